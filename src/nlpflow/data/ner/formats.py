"""Token-classification data read into the internal frame, one row per sentence (or record):

    text         str        the sentence: a token file's tokens joined by single spaces, or
                            the text of a span file as written
    tokens       list[str]
    starts       list[int]  each token's character offset: text[s : s + len(token)] == token
    tags         list[str]  BIO (IOB2), whatever scheme the source writes
    split        str        train / validation / test, only when the source says (read_folder)
    source_line  int        1-based: the line the sentence starts on (the record number of a
                            Label Studio export or a dataset)

    frame = read_conll("data/train.conll")                 # tag scheme detected
    frame = read_spans_jsonl("data/train.jsonl")           # spaCy's blank English tokenizer
    frame = read_label_studio("data/export.json")          # frame.attrs["notes"]: what was left out
    frame = from_hf_dataset(load_dataset("wnut_17")["train"])
    frame = read_token_table("data/ner.parquet")          # tokens + ner_tags names (+ split)
    frame = read_folder("data/ner")                        # train/dev/test files, with split

Every reader raises DataSourceError naming the file:line (or record) and the fix; span files
list every span that cannot be tagged exactly, in one error, and read nothing.
"""

from __future__ import annotations

import codecs
import functools
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from nlpflow.data.ner.align import align_spans
from nlpflow.data.ner.conll import TokenSentence, parse_conll
from nlpflow.data.ner.schemes import (
    SCHEMES,
    detect_scheme,
    find_violations,
    normalize_scheme,
    to_bio,
)
from nlpflow.data.ner.span_files import SpanRecord, parse_label_studio, parse_spans_jsonl
from nlpflow.errors import DataSourceError

COLUMNS = ("text", "tokens", "starts", "tags", "split", "source_line")
SPLITS = ("train", "validation", "test")
SPLIT_WORDS = {"train": "train", "training": "train", "dev": "validation", "val": "validation"}
SPLIT_WORDS |= {"valid": "validation", "validation": "validation", "test": "test"}
FOLDER_FORMATS = {".conll": "conll", ".txt": "conll", ".tsv": "conll"}
FOLDER_FORMATS |= {".jsonl": "spans-jsonl", ".json": "label-studio"}
LISTED = 10  # problems spelled out in one error; the rest are counted

Tokenizer = Callable[[str], Iterable[Any]]  # text -> tokens with .text and .idx (spaCy's)
_HOW = {
    "BIOES": "E-, S-, L- or U- tags",
    "BIO": "B- opens entities",
    "IOB1": "B- only right after its own type",
    "IO": "I- and O only",
}


def read_conll(
    path: str | Path, *, scheme: str = "auto", columns: tuple[int, int] | None = None
) -> pd.DataFrame:
    """A CoNLL token file (nlpflow.data.ner.conll): `scheme` "auto" detects the tag scheme;
    `columns` = (token column, tag column), default (0, -1): the first and the last."""
    path = Path(path)
    sentences = parse_conll(read_text(path), source=str(path), columns=columns)
    return token_frame(sentences, scheme=scheme, source=str(path))


def read_spans_jsonl(path: str | Path, tokenizer: Tokenizer | None = None) -> pd.DataFrame:
    """spaCy/Prodigy JSONL, {"text", "spans" (or "entities")} a line, tokenized by
    `tokenizer` (default: spacy.blank("en").tokenizer); Prodigy's rejected answers left out."""
    path = Path(path)
    records, notes = parse_spans_jsonl(read_text(path), source=str(path))
    return span_frame(records, tokenizer, source=str(path), notes=notes)


def read_label_studio(path: str | Path, tokenizer: Tokenizer | None = None) -> pd.DataFrame:
    """A Label Studio JSON export: each task's data.text and the spans of its first
    annotation not cancelled; frame.attrs["notes"] says which annotation was used where a task
    has several, and which tasks were left out (no annotation, all cancelled)."""
    path = Path(path)
    records, notes = parse_label_studio(read_text(path), source=str(path))
    return span_frame(records, tokenizer, source=str(path), notes=notes)


def from_hf_dataset(
    dataset_split: Iterable[dict[str, Any]],
    label_names: Sequence[str] | None = None,
    *,
    scheme: str = "auto",
    name: str = "dataset",
) -> pd.DataFrame:
    """Rows with `tokens` and `ner_tags` (integers) of a Hugging Face dataset split; the tag
    names are `label_names`, or the ClassLabel feature's names when None."""
    names = list(label_names) if label_names is not None else _class_names(dataset_split, name)
    records: list[tuple[list[Any], list[Any], str | None]] = []
    for number, row in enumerate(dataset_split, start=1):
        ids = list(row["ner_tags"])
        bad = [i for i in ids if not isinstance(i, int) or not 0 <= i < len(names)]
        if bad:
            raise DataSourceError(
                f"{name} record {number} ({name}[{number - 1}]): ner_tags {bad[:5]} are not "
                f"indexes into the {len(names)} label names {names}: pass the dataset's own "
                "label_names."
            )
        records.append((list(row["tokens"]), [names[i] for i in ids], None))
    return _tagged_records(records, scheme=scheme, name=name)


def read_token_table(path: str | Path, *, scheme: str = "auto") -> pd.DataFrame:
    """A Parquet table, one sentence a row: `tokens` (a list of words), `ner_tags` or `tags`
    (a list of tag names) and, when it has one, `split`. gather writes a Hugging Face dataset
    (data.source hf:...) as such a table, its ClassLabel integers named."""
    table = pd.read_parquet(path)
    column = next((c for c in ("ner_tags", "tags") if c in table.columns), None)
    if "tokens" not in table.columns or column is None:
        raise DataSourceError(
            f"{path}: columns {list(table.columns)[:10]}: token classification reads a `tokens` "
            "column and a `ner_tags` (or `tags`) column, one list per sentence, tags as names "
            "(B-PER, I-PER, O)."
        )
    splits = table["split"].tolist() if "split" in table.columns else [None] * len(table)
    records = [
        (_as_list(tokens), _as_list(tags), split)
        for tokens, tags, split in zip(table["tokens"], table[column], splits, strict=True)
    ]
    return _tagged_records(records, scheme=scheme, name=str(path))


def _as_list(value: Any) -> list[Any]:
    """A Parquet cell's list as Python values (numpy arrays hold numpy scalars)."""
    if value is None:
        return []
    return list(value.tolist() if hasattr(value, "tolist") else value)


def _tagged_records(
    records: list[tuple[list[Any], list[Any], str | None]], *, scheme: str, name: str
) -> pd.DataFrame:
    """The frame of (tokens, tag names, split) records; record numbers count from 1."""
    sentences: list[TokenSentence] = []
    empty: list[int] = []
    for number, (tokens, tags, split) in enumerate(records, start=1):
        where = f"{name} record {number} ({name}[{number - 1}])"
        if not tokens and not tags:
            empty.append(number)
            continue
        if len(tokens) != len(tags):
            raise DataSourceError(
                f"{where}: {len(tokens)} tokens but {len(tags)} tags: one tag per token."
            )
        for token in tokens:
            if not isinstance(token, str) or not token or any(ch.isspace() for ch in token):
                raise DataSourceError(
                    f"{where}: token {token!r} is empty or holds whitespace; a token is one "
                    "word (the text is the tokens joined by spaces): fix the dataset's tokens."
                )
        bad = [t for t in tags if not isinstance(t, str) or not t]
        if bad:
            raise DataSourceError(
                f"{where}: tags {bad[:5]} are not tag names: write each tag as its name "
                "(B-PER, I-PER, O), or read a Hugging Face dataset with data.source hf:..."
            )
        sentences.append(TokenSentence(tokens, tags, name, number, split=split))
    frame = token_frame(sentences, scheme=scheme, source=name)
    if empty:
        frame.attrs["notes"] = [f"{name}: left out {len(empty)} empty record(s): {empty[:20]}"]
    return frame


def read_folder(
    path: str | Path,
    *,
    scheme: str = "auto",
    columns: tuple[int, int] | None = None,
    tokenizer: Tokenizer | None = None,
) -> pd.DataFrame:
    """A folder of train, dev (val, validation) and test files of one format (.conll, .txt,
    .tsv: CoNLL; .jsonl: spans; .json: Label Studio), with `split` set from the names. A token
    format's scheme is detected over all files at once."""
    folder = Path(path)
    if not folder.is_dir():
        raise DataSourceError(f"{folder} is not a folder: point at the folder of split files.")
    files = _split_files(folder)
    kinds = {FOLDER_FORMATS[file.suffix.lower()] for file in files.values()}
    if len(kinds) > 1:
        listed = ", ".join(file.name for file in files.values())
        raise DataSourceError(
            f"{folder}: the split files ({listed}) are in different formats: convert them to one."
        )
    kind = kinds.pop()
    if kind == "conll":
        sentences = [
            sentence._replace(split=split)
            for split, file in files.items()
            for sentence in parse_conll(read_text(file), source=str(file), columns=columns)
        ]
        return token_frame(sentences, scheme=scheme, source=str(folder))
    read = read_spans_jsonl if kind == "spans-jsonl" else read_label_studio
    frames = [read(file, tokenizer).assign(split=split) for split, file in files.items()]
    frame = pd.concat(frames, ignore_index=True)[list(COLUMNS)]
    frame.attrs["notes"] = [note for part in frames for note in part.attrs.get("notes", [])]
    return frame


def token_frame(sentences: list[TokenSentence], *, scheme: str, source: str) -> pd.DataFrame:
    """The frame of sentences of tokens and tags in `scheme` ("auto": detected); their
    `split`, when set, becomes the column."""
    if not sentences:
        raise DataSourceError(
            f"{source}: no sentences: expected token lines (token, then its tag) with a blank "
            "line after each sentence."
        )
    chosen, how = _choose_scheme(sentences, scheme, source)
    problems = [
        f"{sentence.where(found.token)}: {found}"
        for sentence in sentences
        for found in find_violations(sentence.tags, chosen)
    ]
    if problems:
        raise DataSourceError(
            f"{source}: {len(problems)} tag(s) break {chosen} ({how}):{_listing(problems)}\n"
            "Fix those tags, or pass scheme= naming the scheme the data is written in "
            f"({', '.join(SCHEMES)})."
        )
    rows = []
    for sentence in sentences:
        starts, at = [], 0
        for token in sentence.tokens:
            starts.append(at)
            at += len(token) + 1
        text = " ".join(sentence.tokens)
        bio = to_bio(sentence.tags, chosen)
        rows.append((text, sentence.tokens, starts, bio, sentence.split, sentence.line))
    return _frame(rows)


def span_frame(
    records: list[SpanRecord], tokenizer: Tokenizer | None, *, source: str, notes: list[str]
) -> pd.DataFrame:
    """The frame of texts with character spans, tokenized and aligned (nlpflow.data.ner.align)."""
    tokenize = tokenizer if tokenizer is not None else default_tokenizer()
    rows = []
    problems: list[str] = []
    for record in records:
        tokens, starts = _tokens_of(tokenize, record)
        if not tokens:
            problems.append(f"{record.where}: the text is empty or blank")
            continue
        tags, found = align_spans(record.text, tokens, starts, record.spans)
        problems.extend(f"{record.where}: {problem}" for problem in [*record.problems, *found])
        rows.append((record.text, tokens, starts, tags, None, record.line))
    if problems:
        raise DataSourceError(
            f"{source}: {len(problems)} span(s) or text(s) cannot be tagged exactly:"
            f"{_listing(problems)}\nFix their character offsets (into the text, end "
            "exclusive) or labels in the file; nothing was read."
        )
    if not rows:
        raise DataSourceError(f"{source}: no records to read ({'; '.join(notes) or 'empty'}).")
    frame = _frame(rows)
    frame.attrs["notes"] = notes
    return frame


@functools.cache
def default_tokenizer() -> Tokenizer:
    """spaCy's blank English tokenizer: rules only, no model to download."""
    import spacy  # here: a second to import, and token files never need it

    return spacy.blank("en").tokenizer


def read_text(path: Path) -> str:
    """A file's text: UTF-8, with or without a BOM, any line ends (the parsers strip \\r)."""
    if not path.is_file():  # a folder, a pipe (reading one blocks) or nothing
        what = "not a regular file" if path.exists() else "not found"
        raise DataSourceError(f"{path}: {what}: point at a data file.")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataSourceError(f"{path} cannot be read: {exc.strerror}.") from None
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise DataSourceError(
            f"{path} is UTF-16 text: re-encode it as UTF-8, e.g. `iconv -f utf-16 -t utf-8 in > out`."
        )
    # Span offsets count characters of the text field, never of the file: dropping the
    # file's BOM moves none of them.
    data = data.removeprefix(codecs.BOM_UTF8)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataSourceError(
            f"{path}:{line}: not UTF-8 (byte 0x{data[exc.start]:02x}): re-encode the file, "
            "e.g. `iconv -f cp1252 -t utf-8 in > out`."
        ) from None
    if not text.strip():
        raise DataSourceError(f"{path} is empty: point at a file with labelled sentences.")
    return text


def _choose_scheme(sentences: list[TokenSentence], scheme: str, source: str) -> tuple[str, str]:
    if scheme.lower() == "auto":
        detected = detect_scheme(sentence.tags for sentence in sentences)
        return detected, f"detected: {_HOW[detected]}"
    try:
        return normalize_scheme(scheme), "as passed"
    except ValueError as exc:
        raise DataSourceError(f"{source}: {exc}.") from None


def _tokens_of(tokenize: Tokenizer, record: SpanRecord) -> tuple[list[str], list[int]]:
    tokens: list[str] = []
    starts: list[int] = []
    for token in tokenize(record.text):
        word, at = token.text, token.idx
        # spaCy keeps runs of spaces and line breaks as tokens: no entity starts or ends on
        # one, and a model's tokenizer gives it no piece to tag, so they are left out.
        if not word.strip():
            continue
        if record.text[at : at + len(word)] != word:
            raise DataSourceError(
                f"{record.where}: the tokenizer's token {word!r} at offset {at} is not the "
                "text there: pass a tokenizer whose tokens carry their offsets (spaCy's)."
            )
        tokens.append(word)
        starts.append(at)
    return tokens, starts


def _class_names(dataset_split: Any, name: str) -> list[str]:
    feature = getattr(dataset_split, "features", {}).get("ner_tags")
    names = getattr(getattr(feature, "feature", None), "names", None)
    if not names:
        raise DataSourceError(
            f"{name}: ner_tags is not a sequence of ClassLabel, so the tag names are unknown: "
            "pass label_names (the tag name of each integer, in order)."
        )
    return list(names)


def _split_files(folder: Path) -> dict[str, Path]:
    found: dict[str, list[Path]] = {}
    unnamed: list[str] = []
    for file in sorted(folder.iterdir()):
        if (
            not file.is_file()
            or file.name.startswith(".")
            or file.suffix.lower() not in FOLDER_FORMATS
        ):
            continue
        words = {
            SPLIT_WORDS[w] for w in re.split(r"[^a-z]+", file.stem.lower()) if w in SPLIT_WORDS
        }
        if len(words) == 1:
            found.setdefault(words.pop(), []).append(file)
        else:
            unnamed.append(file.name)
    named = f"(train, dev/val/validation, test; {', '.join(FOLDER_FORMATS)})"
    if unnamed:
        raise DataSourceError(
            f"{folder}: data files {unnamed} name no one split: name each file after its split "
            f"{named}, and move other files out."
        )
    if not found:
        raise DataSourceError(
            f"{folder}: no data files {named}: point at the folder that has them."
        )
    twice = {split: [f.name for f in files] for split, files in found.items() if len(files) > 1}
    if twice:
        raise DataSourceError(f"{folder}: more than one file for a split {twice}: keep one each.")
    return {split: found[split][0] for split in SPLITS if split in found}


def _frame(rows: list[tuple[Any, ...]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    frame["source_line"] = frame["source_line"].astype("int64")
    if frame["split"].isna().all():  # the source says nothing of splits: no column
        frame = frame.drop(columns="split")
    return frame


def _listing(problems: list[str]) -> str:
    listed = "".join(f"\n  - {problem}" for problem in problems[:LISTED])
    more = len(problems) - LISTED
    return listed + (f"\n  - and {more} more" if more > 0 else "")
