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
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from nlpflow.data import SPLITS, load_splits
from nlpflow.errors import ModelError
from nlpflow.params import PreprocessParams
from nlpflow.text import strip_accents

_SPACES = re.compile(r"\s+")


class PreprocessReport(BaseModel):
    rows: dict[str, int]
    seconds: float
    texts_per_second: float
    emptied: int  # texts that cleaning reduced to nothing
    cached: bool = False  # outputs copied from the preprocessing cache


class TextPreprocessor:
    """spaCy's tokenizer, spaCy's lemma lookup table, and a cache per lexeme.

    What a token becomes (dropped, its lemma, or itself) depends only on its lexeme, so it is
    decided once per distinct word and cached; the per-token work left is one `doc.to_array`
    call and a join. Running spaCy's lemmatizer component instead, token by token in Python,
    made this stage three times slower than the bare tokenizer (bench/preprocess.py).
    """

    def __init__(self, params: PreprocessParams) -> None:
        self.params = params
        self._nlp: Any = None
        self._lemmas: Any = None
        self._stemmer: Any = None
        self._cache: dict[int, str] = {}

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

    def _piece(self, orth: int) -> str:
        """The output for one lexeme: " " when dropped, else its lemma or its text."""
        p = self.params
        lex = self.nlp.vocab[orth]
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

        cache, pieces, kept = self._cache, [], 0
        limit = self.params.max_tokens
        for orth, space in doc.to_array([ORTH, SPACY]).tolist():
            piece = cache.get(orth)
            if piece is None:
                piece = cache[orth] = self._piece(orth)
            if limit is not None and piece != " ":
                kept += 1
                if kept > limit:
                    break
            pieces.append(piece + " " if space else piece)
        # Keep the source's own spacing ("Hello, you") rather than one token per space.
        text = _SPACES.sub(" ", "".join(pieces)).strip()
        return strip_accents(text) if self.params.strip_accents else text

    def transform(self, texts: Iterable[str]) -> list[str]:
        if self.params.lowercase:  # before lemmatising: lookup tables key on lower-case forms
            texts = (t.lower() for t in texts)
        tokenize = self.nlp.tokenizer  # the only spaCy component these switches need
        return [
            self._render(doc) for doc in tokenize.pipe(texts, batch_size=self.params.batch_size)
        ]


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
    """The input splits' bytes, the params and this code: equal keys give equal outputs."""
    digest = hashlib.sha256(json.dumps(params.model_dump(), sort_keys=True).encode())
    for code in (Path(__file__), Path(__file__).with_name("text.py")):
        digest.update(code.read_bytes())
    for split in SPLITS:
        digest.update((src / f"{split}.parquet").read_bytes())
    return digest.hexdigest()


def preprocess(
    *, src: Path, dst: Path, params: PreprocessParams, cache: Path | None = None
) -> PreprocessReport:
    """Clean the `text` column of every split; the raw text stays in `raw_text`.

    With `cache`, outputs are kept under the content hash of input, params and code, and a
    repeated run copies them instead of cleaning again.
    """
    splits = load_splits(src)
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
    cleaner = TextPreprocessor(params)
    rows, emptied = {}, 0
    for split in SPLITS:
        frame = splits[split]
        cleaned = cleaner.transform(frame["text"].astype(str).tolist())
        emptied += sum(1 for t in cleaned if not t)
        out = frame.assign(raw_text=frame["text"], text=cleaned)
        out.to_parquet(dst / f"{split}.parquet", index=False)
        rows[split] = len(out)
    seconds = time.perf_counter() - start
    total = sum(rows.values())
    report = PreprocessReport(
        rows=rows, seconds=round(seconds, 3), texts_per_second=round(total / max(seconds, 1e-9), 1),
        emptied=emptied,
    )  # fmt: skip
    if hit is not None:
        _store(hit, dst, report)
    return report


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
