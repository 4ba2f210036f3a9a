"""preprocess: clean text with spaCy, each step a switch in params.

The same `TextPreprocessor` runs in this stage and inside the registered MLflow model, so the
text a model sees at serving time is cleaned exactly as in training.

    nlpflow stage preprocess
"""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from nlpflow.data import SPLITS, load_splits
from nlpflow.errors import ModelError
from nlpflow.params import PreprocessParams

_SPACES = re.compile(r"\s+")


class PreprocessReport(BaseModel):
    rows: dict[str, int]
    seconds: float
    texts_per_second: float
    emptied: int  # texts that cleaning reduced to nothing


def strip_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


class TextPreprocessor:
    """spaCy pipeline with only the components the switches need (tokenizer; lemmatizer)."""

    def __init__(self, params: PreprocessParams) -> None:
        self.params = params
        self._nlp: Any = None

    @property
    def nlp(self) -> Any:
        if self._nlp is None:
            import spacy

            nlp = spacy.blank(self.params.language)
            if self.params.lemmatize:
                try:
                    nlp.add_pipe("lemmatizer", config={"mode": "lookup"})
                    nlp.initialize()
                except (ValueError, OSError) as exc:
                    raise ModelError(
                        f"lookup lemmatizer for {self.params.language!r} unavailable ({exc}); "
                        "install spacy-lookups-data or set preprocess.lemmatize=false."
                    ) from None
            self._nlp = nlp
        return self._nlp

    def _drop(self, token: Any) -> bool:
        p = self.params
        return bool(
            (p.remove_urls and token.like_url)
            or (p.remove_emails and token.like_email)
            or (p.remove_numbers and token.like_num)
            or (p.remove_punctuation and token.is_punct)
            or (p.remove_stopwords and token.is_stop)
        )

    def _render(self, doc: Any) -> str:
        words = []
        for token in doc:
            if token.is_space or self._drop(token):
                words.append(" ")  # a dropped token still separates its neighbours
                continue
            word = token.lemma_ if self.params.lemmatize and token.lemma_ else token.text
            words.append(word + (token.whitespace_ or ""))
        # Keep the source's own spacing ("Hello, you") rather than one token per space.
        text = _SPACES.sub(" ", "".join(words)).strip()
        return strip_accents(text) if self.params.strip_accents else text

    def transform(self, texts: Iterable[str]) -> list[str]:
        if self.params.lowercase:  # before lemmatising: lookup tables key on lower-case forms
            texts = (t.lower() for t in texts)
        docs = self.nlp.pipe(texts, batch_size=self.params.batch_size)
        return [self._render(doc) for doc in docs]


def preprocess(*, src: Path, dst: Path, params: PreprocessParams) -> PreprocessReport:
    """Clean the `text` column of every split; the raw text stays in `raw_text`."""
    splits = load_splits(src)
    cleaner = TextPreprocessor(params)
    dst.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
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
    return PreprocessReport(
        rows=rows, seconds=round(seconds, 3), texts_per_second=round(total / max(seconds, 1e-9), 1),
        emptied=emptied,
    )  # fmt: skip
