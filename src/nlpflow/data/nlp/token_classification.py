"""The data role of token classification (named entities): one sentence per row, its tokens,
their character offsets and BIO tags (nlpflow.data.ner.formats describes the columns).

gather reads CoNLL column files (data.format conll; the four-column CoNLL-2003 layout too),
JSONL with character spans (spans_jsonl, as spaCy and Prodigy write them), Label Studio's JSON
export (label_studio), a Parquet table of tokens and tag names (parquet; a Hugging Face
dataset with `tokens` and ClassLabel `ner_tags`, data.source hf:..., arrives as one), or a
folder of train/dev/test files of one of them; any tag scheme (data.tag_scheme, detected by
default) becomes BIO. Entity types are renamed by data.label_map,
repeated sentences dropped by data.dedupe, and splits stratified by each sentence's first
entity type.

    from nlpflow.data.nlp import data_role
    frame, fmt = data_role("token-classification").read(Path("data/ner"), DataParams())
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from nlpflow.config.params import DataParams, SplitParams
from nlpflow.config.source_kinds import is_glob
from nlpflow.data.local_source import split_file_paths
from nlpflow.data.reading import refuse_special
from nlpflow.data.splits import complete_splits, split_name, split_stratified
from nlpflow.data.text import normalized_or_none
from nlpflow.errors import DataSourceError

FORMATS = ("conll", "spans_jsonl", "label_studio", "parquet")
BY_SUFFIX = {".conll": "conll", ".txt": "conll", ".tsv": "conll", ".iob": "conll",
             ".bio": "conll", ".jsonl": "spans_jsonl", ".json": "label_studio",
             ".parquet": "parquet"}  # fmt: skip
NO_ENTITY = "(none)"  # the stratum of sentences without an entity


def read(source: Path, params: DataParams) -> tuple[pd.DataFrame, str]:
    """The sentences of `source` in BIO, on the tokens serving will see (retokenize), and the
    format read."""
    frame, fmt = _read(source, params)
    return retokenize(frame), fmt


def retokenize(frame: pd.DataFrame) -> pd.DataFrame:
    """Each sentence on spaCy's tokens of its text, the tokens the served model gets from raw
    text: one tokenizer for training, evaluation and serving. spaCy only splits a token of a
    token file further ("@user:" -> "@user", ":"), so every entity keeps its characters: the
    first piece of a B- token keeps B-, the other pieces continue it (I-)."""
    from nlpflow.data.ner.formats import default_tokenizer

    tokenize = default_tokenizer()
    tokens_out, starts_out, tags_out = [], [], []
    for text, starts, tags in zip(frame["text"], frame["starts"], frame["tags"], strict=True):
        pieces = [t for t in tokenize(text) if not t.is_space]
        starts, tags = list(starts), list(tags)
        owner, new_tags = 0, []
        for piece in pieces:
            while owner + 1 < len(starts) and starts[owner + 1] <= piece.idx:
                owner += 1
            tag = tags[owner]
            first = piece.idx == starts[owner]
            new_tags.append(tag if first or tag == "O" else f"I-{tag[2:]}")
        tokens_out.append([t.text for t in pieces])
        starts_out.append([t.idx for t in pieces])
        tags_out.append(new_tags)
    return frame.assign(tokens=tokens_out, starts=starts_out, tags=tags_out)


def _read(source: Path, params: DataParams) -> tuple[pd.DataFrame, str]:
    from nlpflow.data.ner import formats

    if is_glob(source):
        raise DataSourceError(
            f"data.source {source} is a glob: token classification reads one file, a folder of "
            "train/dev/test files, or the files data.split_files names."
        )
    if not source.exists():
        raise DataSourceError(f"data source {source} does not exist: check data.source.")
    refuse_special(source)
    scheme = params.tag_scheme
    if params.split_files:
        return _read_split_files(source, params), _format(next(iter(params.split_files)), params)
    if source.is_dir():
        return formats.read_folder(source, scheme=scheme), "folder"
    fmt = _format(source.name, params)
    if fmt == "conll":
        return formats.read_conll(source, scheme=scheme), fmt
    if fmt == "parquet":  # a table of tokens and tag names; an hf: source's snapshot
        return formats.read_token_table(source, scheme=scheme), fmt
    reader = formats.read_spans_jsonl if fmt == "spans_jsonl" else formats.read_label_studio
    return reader(source), fmt


def _format(name: str, params: DataParams) -> str:
    if params.format in FORMATS:
        return params.format
    found = BY_SUFFIX.get(Path(name).suffix.lower())
    if found is None:
        raise DataSourceError(
            f"{name}: cannot tell its format from the extension: set data.format to one of "
            f"{', '.join(FORMATS)}."
        )
    return found


def _read_split_files(folder: Path, params: DataParams) -> pd.DataFrame:
    """The files data.split_files names, one format; the tag scheme detected over all of them."""
    from nlpflow.data.ner import formats
    from nlpflow.data.ner.conll import parse_conll

    named = params.split_files or {}
    paths = split_file_paths(folder, params)
    kinds = {_format(name, params) for name in named}
    if len(kinds) > 1:
        raise DataSourceError(
            f"data.split_files names files of different formats ({', '.join(sorted(kinds))}): "
            "convert them to one, or set data.format."
        )
    if kinds == {"conll"}:
        sentences = [
            sentence._replace(split=split_name(split, paths[name]))
            for name, split in named.items()
            for sentence in parse_conll(formats.read_text(paths[name]), source=str(paths[name]))
        ]
        return formats.token_frame(sentences, scheme=params.tag_scheme, source=str(folder))
    if kinds == {"parquet"}:
        return pd.concat([
            formats.read_token_table(paths[name], scheme=params.tag_scheme).assign(
                split=split_name(split, paths[name])
            ) for name, split in named.items()
        ], ignore_index=True)  # fmt: skip
    reader = formats.read_spans_jsonl if kinds == {"spans_jsonl"} else formats.read_label_studio
    parts = [reader(paths[name]).assign(split=split_name(split, paths[name]))
             for name, split in named.items()]  # fmt: skip
    return pd.concat(parts, ignore_index=True)


def entity_types(tags: list[str]) -> list[str]:
    """The type of each entity of a BIO sequence, in order."""
    return [tag[2:] for tag in tags if tag.startswith("B-")]


def shape(frame: pd.DataFrame, params: DataParams) -> tuple[pd.DataFrame, int]:
    """Entity types renamed (data.label_map), repeated sentences dropped (data.dedupe)."""
    if params.label_map:
        mapping = params.label_map

        def rename(tags: list[str]) -> list[str]:
            return [t if t == "O" else f"{t[:2]}{mapping.get(t[2:], t[2:])}" for t in tags]

        frame = frame.assign(tags=frame["tags"].map(lambda tags: rename(list(tags))))
    if params.dedupe == "none":
        return frame, 0
    text = frame["text"]
    key = text if params.dedupe == "exact" else text.map(normalized_or_none)
    keep = ~key.duplicated() | key.isna()
    return frame[keep], int((~keep).sum())


def assign_splits(frame: pd.DataFrame, params: SplitParams, *, from_source: bool) -> pd.DataFrame:
    """The splits, stratified by each sentence's first entity type (or none): every type has
    its share of sentences in each split, as classes do in classification's."""
    stratum = frame["tags"].map(lambda tags: (entity_types(list(tags)) or [NO_ENTITY])[0])
    work = frame.assign(label=stratum)
    split = complete_splits(work, params) if from_source else split_stratified(work, params)
    return split.drop(columns="label")


def target_counts(frame: pd.DataFrame, *, missing: bool = False) -> dict[str, int]:
    """Entities per type, sorted by type (`missing` is classification's: every sentence has
    tags)."""
    counts: dict[str, int] = {}
    for tags in frame["tags"]:
        for kind in entity_types(list(tags)):
            counts[kind] = counts.get(kind, 0) + 1
    return dict(sorted(counts.items()))
