"""rules: spaCy's SpanRuler tagging entities from patterns, the rule baseline of
token-classification (issue 15) that every learned NER model must beat.

Patterns come from a versioned JSONL file (train.rules.patterns) in spaCy's entity-ruler
format, one a line, and/or from a gazetteer of the train split (train.rules.from_train):

    {"label": "product", "pattern": "Dune 2"}                                  phrase
    {"label": "location", "pattern": [{"LOWER": "alamo"}, {"LOWER": "drafthouse"}]}  tokens

Phrase patterns are tokenised as serving tokenises raw text (spaCy's blank English tokenizer);
gazetteer entries are token patterns on ORTH, so they match exactly the tokens they came from.
Where matches overlap, the longest wins, then the earliest (spaCy's ents filter). Each tag's
probability is 1.0: rules cannot say how sure they are.

    model = fit_rules(train, validation, labels=labels, params=train_params)
    tags, probs = model.predict_tags([["Going", "to", "see", "Dune", "2"]])
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from nlpflow.config.params import TrainParams
from nlpflow.errors import DataSourceError, ParamsError
from nlpflow.training.families import XY, EpochCallback, load_manifest, save_manifest
from nlpflow.training.progress import TrainingProgress

FAMILY = "rules"
PATTERNS_FILE = "patterns.jsonl"
Pattern = dict[str, Any]  # {"label": str, "pattern": str | list[dict], "id"?: str}
_FORMAT = (
    'each line is one JSON object {"label": TYPE, "pattern": "a phrase" or '
    '[{"LOWER": "token"}, ...]} (spaCy\'s entity-ruler patterns)'
)


class RulesTagger:
    family = FAMILY
    task = "token-classification"  # rules serves two tasks: serving asks the model which

    def __init__(self, patterns: list[Pattern], labels: list[str]) -> None:
        import spacy

        self.patterns = patterns
        self.labels = labels
        self.nlp = spacy.blank("en")
        ruler: Any = self.nlp.add_pipe(
            "span_ruler", config={"spans_key": None, "annotate_ents": True, "validate": True}
        )
        ruler.add_patterns(patterns)

    def predict_tags(
        self, sentences: Sequence[Sequence[str]]
    ) -> tuple[list[list[str]], list[list[float]]]:
        from spacy.tokens import Doc

        from nlpflow.data.ner.schemes import bio_of

        ruler: Any = self.nlp.get_pipe("span_ruler")
        tags = []
        for tokens in sentences:
            doc = ruler(Doc(self.nlp.vocab, words=list(tokens)))
            tags.append(bio_of([(e.start, e.end, e.label_) for e in doc.ents], len(doc)))
        return tags, [[1.0] * len(sentence) for sentence in tags]

    def save(self, path: Path) -> None:
        save_manifest(
            path, family=FAMILY, labels=self.labels,
            extra={"task": self.task, "patterns": PATTERNS_FILE},
        )  # fmt: skip
        lines = (json.dumps(pattern, ensure_ascii=False) + "\n" for pattern in self.patterns)
        (path / PATTERNS_FILE).write_text("".join(lines), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> RulesTagger:
        manifest = load_manifest(path)
        return cls(read_patterns(path / manifest["patterns"]), manifest["labels"])


def read_patterns(file: Path, *, types: set[str] | None = None) -> list[Pattern]:
    """The patterns of a JSONL file; DataSourceError at the first bad line (file:line, what is
    wrong, the fix). `types`: the entity types a pattern may have (None: any)."""
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataSourceError(f"{file}: not UTF-8 ({exc.reason}); save it as UTF-8.") from exc
    patterns = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            problem, pattern = _parse_line(line, types)
            if problem:
                raise DataSourceError(f"{file}:{number}: {problem}")
            patterns.append(pattern)
    return patterns


def _parse_line(line: str, types: set[str] | None) -> tuple[str, Pattern]:
    """(what is wrong with the line, or "", its pattern)."""
    from spacy.schemas import validate_token_pattern

    try:
        pattern = json.loads(line)
    except json.JSONDecodeError as exc:
        return f"not JSON ({exc.msg} at column {exc.colno}); {_FORMAT}", {}
    if not isinstance(pattern, dict) or not {"label", "pattern"} <= set(pattern):
        return f"no label and pattern; {_FORMAT}", {}
    if set(pattern) - {"label", "pattern", "id"}:
        extra = ", ".join(sorted(set(pattern) - {"label", "pattern", "id"}))
        return f"unknown key(s) {extra}; keys are label, pattern and optionally id", {}
    label, body = pattern["label"], pattern["pattern"]
    if not isinstance(label, str) or not label or any(ch.isspace() for ch in label):
        return f"label {label!r} is not an entity type (one word, not empty)", {}
    if types is not None and label not in types:
        known = ", ".join(sorted(types))
        return (
            f"label {label!r} is no entity type of the data ({known}); rename it to one of "
            "them (types are case-sensitive) or drop the line"
        ), {}
    if isinstance(body, str):
        return ("" if body.strip() else "the phrase pattern is empty"), pattern
    if not isinstance(body, list) or not body:
        return f"pattern is neither a phrase nor a non-empty list of tokens; {_FORMAT}", {}
    errors = validate_token_pattern(body)
    if errors:
        return f"bad token pattern: {'; '.join(errors)} (see spaCy's Matcher patterns)", {}
    return "", pattern


def gazetteer(train: tuple[Sequence[Sequence[str]], Sequence[Sequence[str]]]) -> list[Pattern]:
    """An exact token pattern (ORTH) per entity surface form of `train` (token lists, BIO tag
    lists), with the type the form has most often there (ties: the first type by name)."""
    from nlpflow.data.ner.schemes import spans_of

    seen: dict[tuple[str, ...], Counter[str]] = {}
    for tokens, tags in zip(*train, strict=True):
        for start, end, kind in spans_of(tags):
            seen.setdefault(tuple(tokens[start:end]), Counter())[kind] += 1
    patterns = []
    for form in sorted(seen):
        kind = min(seen[form], key=lambda k: (-seen[form][k], k))
        patterns.append({"label": kind, "pattern": [{"ORTH": token} for token in form]})
    return patterns


def score_tagger(
    predict: Callable[[list[list[str]]], tuple[list[list[str]], Any]],
    splits: dict[str, XY],
) -> dict[str, float]:
    """`<split>_entity_{precision,recall,f1}` (seqeval strict, micro) of each non-empty split
    of (token lists, gold BIO tag lists)."""
    from nlpflow.evaluation.ner.scores import entity_scores

    scores: dict[str, float] = {}
    for split, (sentences, gold) in splits.items():
        if sentences:
            found = entity_scores(gold, predict([list(s) for s in sentences])[0])
            for figure in ("precision", "recall", "f1"):
                scores[f"{split}_entity_{figure}"] = float(found[f"entity_{figure}"])
    return scores


def fit_rules(
    train: XY, validation: XY, *, labels: list[str], params: TrainParams,
    on_epoch: EpochCallback | None = None, on_step: EpochCallback | None = None,
    workdir: Path | None = None,
) -> RulesTagger:  # fmt: skip
    """rules' registered fit: train.rules. Nothing is learned but the gazetteer; one "epoch"
    reports the entity scores (train's too when someone listens)."""
    settings = params.rules
    types = {tag[2:] for tag in labels if tag != "O"}
    patterns: list[Pattern] = []
    if settings.patterns is not None:
        file = Path(settings.patterns)
        if not file.is_file():
            raise ParamsError(
                f"train.rules.patterns: {file} is not a file (relative to {Path.cwd()}); give the "
                "path of a JSONL pattern file, or null to tag with the train gazetteer only."
            )
        patterns += read_patterns(file, types=types)
    from_train = settings.patterns is None if settings.from_train is None else settings.from_train
    if from_train:
        patterns += gazetteer(train)
    if not patterns:
        raise ParamsError(
            "rules has no pattern: train.rules.patterns holds none and train.rules.from_train "
            "is false (or the train split has no entity); add patterns or set from_train: true."
        )
    model = RulesTagger(patterns, labels)
    progress = TrainingProgress(FAMILY, metric="entity_f1")
    progress.begin(examples=len(train[0]))
    splits = {"train": train, "val": validation} if on_epoch else {"val": validation}
    scores = score_tagger(model.predict_tags, splits)
    progress.finish([{"epoch": 1.0, **scores}])
    if on_epoch is not None:
        on_epoch(1, scores)
    return model
