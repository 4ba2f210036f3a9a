"""rules for text-classification: a label per text from a hand-written rules file (issue 16).

Nothing is learned. The file (train.rules.patterns) is read, checked against the labels, and
copied into the model folder as written, so a registered model holds its own rules and a
changed file is a new model. A YAML file:

    default: ham                    # the label of texts no rule fires on
    rules:
      - name: prize                 # optional; shown as the rule that decided a text
        label: spam
        priority: 10                # optional, default 0
        keywords: [claim, prize, "you have won"]   # whole words or phrases, any case
      - label: spam
        priority: 5
        regex: '\\b\\d{5}\\b'          # Python re.search on the text, case as written
      - label: spam
        pattern: [{LOWER: free}, {LIKE_NUM: true}]  # a spaCy Matcher token pattern

or JSONL: one rule object a line, and a line {"default": "ham"}. Of the rules that fire on a
text, the one of highest priority decides; of equal priorities the one earlier in the file.
Rules read the text as the model would (after preprocess, as serving cleans it).

A rules model's probabilities are one-hot: the decided label 1.0, the others 0.0 (rules cannot
say how sure they are; calibration metrics show as much). `decide` says which rule decided each
text, for explanations and for hybrid serving, where a rules file overrides a learned model's
label wherever one of its rules fires (RulesOverride; params serve.rules).

    rules = read_rules(Path("configs/rules/sms_spam.yaml"), labels=["ham", "spam"])
    model = fit_text_rules(train, validation, labels=["ham", "spam"], params=train_params)
    model.fired(["WINNER! claim your prize"])      # ["prize"]; None where the default decided
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nlpflow.config.params import TrainParams
from nlpflow.errors import ModelError, ParamsError
from nlpflow.training.families import XY, EpochCallback, load_manifest, save_manifest
from nlpflow.training.progress import TrainingProgress

FAMILY = "rules"
TASK = "text-classification"
RULES_FILE = "rules"  # + the source file's suffix, in the model folder
KINDS = ("keywords", "regex", "pattern")
KEYS = ("name", "label", "priority", *KINDS)
SUFFIXES = {".yaml": "yaml", ".yml": "yaml", ".jsonl": "jsonl"}


@dataclass(frozen=True)
class Rule:
    name: str
    label: str
    priority: int
    kind: str  # one of KINDS
    value: Any  # keywords: list[str]; regex: str; pattern: list of token dicts
    line: int  # in its file, for messages


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]  # in file order
    default: str

    @property
    def labels(self) -> set[str]:
        return {self.default, *(rule.label for rule in self.rules)}


# ---------------------------------------------------------------------------------------------
# Reading a rules file


def read_rules(file: Path, *, labels: Sequence[str] | None = None) -> RuleSet:
    """The rules of `file` (.yaml, .yml or .jsonl); ParamsError naming the file, the line and
    the fix at the first problem. `labels`: what a rule or the default may say (None: any)."""
    text, fmt = read_rules_text(file)
    return parse_rules(text, fmt=fmt, origin=str(file), labels=labels)


def read_rules_text(file: Path) -> tuple[str, str]:
    """The text of rules file `file` and its format (yaml or jsonl), unchecked."""
    if not file.is_file():
        raise ParamsError(
            f"rules file {file} does not exist (paths are relative to the project folder); "
            "write it (docs/training.md, The rules family) or fix the path in params"
        )
    if file.suffix.lower() not in SUFFIXES:
        raise ParamsError(
            f"{file}: a rules file is YAML (.yaml, .yml) or JSONL (.jsonl); rename it"
        )
    try:
        return file.read_text(encoding="utf-8"), SUFFIXES[file.suffix.lower()]
    except UnicodeDecodeError as exc:
        raise ParamsError(f"{file}: not UTF-8 ({exc.reason}); save it as UTF-8") from None


def parse_rules(
    text: str, *, fmt: str, origin: str, labels: Sequence[str] | None = None
) -> RuleSet:
    """The rules in `text` of format `fmt` (yaml or jsonl); `origin` names it in messages."""
    entries, default, default_line = (_yaml_entries if fmt == "yaml" else _jsonl_entries)(
        text, origin
    )
    allowed = None if labels is None else list(labels)
    if default is None:
        where = "a top-level `default: LABEL`" if fmt == "yaml" else 'a line {"default": LABEL}'
        raise ParamsError(
            f"{origin}: no default label (for texts no rule fires on); add {where}"
            + (f", one of {', '.join(allowed)}" if allowed else "")
        )
    _check_label(default, allowed, at=f"{origin}:{default_line}: default")
    if not entries:
        raise ParamsError(f"{origin}: holds no rule; add rules (or use another family)")
    rules = [_rule(entry, line, i, origin, allowed) for i, (entry, line) in enumerate(entries)]
    seen: dict[str, int] = {}
    for rule in rules:
        if rule.name in seen:
            raise ParamsError(
                f"{origin}:{rule.line}: rule name {rule.name!r} is also the name of the rule "
                f"at line {seen[rule.name]}; names must be unique"
            )
        seen[rule.name] = rule.line
    return RuleSet(tuple(rules), default)


def _yaml_entries(text: str, origin: str) -> tuple[list[tuple[Any, int]], Any, int]:
    """(rules with their lines, the default, its line) of a YAML rules file."""
    import yaml

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{origin}:{mark.line + 1}" if mark is not None else origin
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ParamsError(f"{where}: not valid YAML ({problem})") from None
    if not isinstance(data, dict) or root is None:
        raise ParamsError(f"{origin}: expected a mapping with `default:` and `rules:` (a list)")
    unknown = sorted(set(map(str, data)) - {"default", "rules"})
    if unknown:
        raise ParamsError(
            f"{origin}: unknown key(s) {', '.join(unknown)}; the keys are default and rules"
        )
    lines = {node.value: (node, value) for node, value in root.value}
    rules = data.get("rules") or []
    if not isinstance(rules, list):
        raise ParamsError(f"{origin}: `rules` must be a list of rules (each `- label: ...`)")
    items = lines["rules"][1].value if "rules" in lines and rules else []
    default_line = lines["default"][0].start_mark.line + 1 if "default" in lines else 1
    entries = [(rule, node.start_mark.line + 1) for rule, node in zip(rules, items, strict=True)]
    return entries, data.get("default"), default_line


def _jsonl_entries(text: str, origin: str) -> tuple[list[tuple[Any, int]], Any, int]:
    """(rules with their lines, the default, its line) of a JSONL rules file."""
    entries, default, default_line = [], None, 1
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ParamsError(
                f"{origin}:{number}: not JSON ({exc.msg} at column {exc.colno}); each line is "
                'one rule object, or {"default": LABEL}'
            ) from None
        if isinstance(entry, dict) and set(entry) == {"default"}:
            if default is not None:
                raise ParamsError(
                    f"{origin}:{number}: a second default (the first at line {default_line}); "
                    "keep one"
                )
            default, default_line = entry["default"], number
        else:
            entries.append((entry, number))
    return entries, default, default_line


def _check_label(label: Any, allowed: list[str] | None, *, at: str) -> None:
    if not isinstance(label, str) or not label.strip():
        raise ParamsError(f"{at}: label {label!r} is not a label (a non-empty string)")
    if allowed is not None and label not in allowed:
        raise ParamsError(
            f"{at}: label {label!r} is not one of the labels ({', '.join(allowed)}); use one "
            "of them (labels are case-sensitive; data.labels lists them) or drop the rule"
        )


def _rule(entry: Any, line: int, index: int, origin: str, allowed: list[str] | None) -> Rule:
    at = f"{origin}:{line}"
    if not isinstance(entry, dict):
        raise ParamsError(f"{at}: a rule is a mapping with label and one of {', '.join(KINDS)}")
    name = entry.get("name", f"rule{index + 1}")
    at = f"{at}: rule {name!r}"
    unknown = sorted(set(map(str, entry)) - set(KEYS))
    if unknown:
        raise ParamsError(f"{at}: unknown key(s) {', '.join(unknown)}; keys are {', '.join(KEYS)}")
    if not isinstance(name, str) or not name.strip():
        raise ParamsError(f"{at}: name must be a non-empty string")
    if "label" not in entry:
        raise ParamsError(f"{at}: no label; give the label this rule assigns")
    _check_label(entry["label"], allowed, at=at)
    priority = entry.get("priority", 0)
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise ParamsError(f"{at}: priority {priority!r} is not an integer (higher wins)")
    kinds = [kind for kind in KINDS if kind in entry]
    if len(kinds) != 1:
        raise ParamsError(
            f"{at}: give exactly one of {', '.join(KINDS)} (it has "
            f"{', '.join(kinds) or 'none'}); split it into several rules"
        )
    kind = kinds[0]
    value = {"keywords": _keywords, "regex": _regex, "pattern": _pattern}[kind](entry[kind], at)
    return Rule(name, entry["label"], priority, kind, value, line)


def _keywords(value: Any, at: str) -> list[str]:
    words = [value] if isinstance(value, str) else value
    if not isinstance(words, list) or not words:
        raise ParamsError(f"{at}: keywords must be a word or phrase, or a non-empty list of them")
    for word in words:
        if not isinstance(word, str) or not word.strip():
            raise ParamsError(f"{at}: keyword {word!r} is not a word or phrase")
    return [" ".join(word.split()) for word in words]


def _regex(value: Any, at: str) -> str:
    if not isinstance(value, str) or not value:
        raise ParamsError(f"{at}: regex must be a non-empty string (Python syntax)")
    try:
        re.compile(value)
    except re.error as exc:
        raise ParamsError(
            f"{at}: regex '{value}' does not compile ({exc.msg} at position {exc.pos}); fix "
            "it (Python `re` syntax; in YAML, single quotes keep backslashes as written)"
        ) from None
    return value


def _pattern(value: Any, at: str) -> list[dict[str, Any]]:
    from spacy.schemas import validate_token_pattern

    if not isinstance(value, list) or not value or not all(isinstance(t, dict) for t in value):
        raise ParamsError(
            f"{at}: pattern must be a non-empty list of token objects, e.g. "
            '[{"LOWER": "free"}, {"LIKE_NUM": true}] (spaCy Matcher patterns)'
        )
    errors = validate_token_pattern(value)
    if errors:
        raise ParamsError(f"{at}: bad token pattern: {'; '.join(errors)} (spaCy Matcher syntax)")
    return value


# ---------------------------------------------------------------------------------------------
# Applying rules


def keyword_regex(words: Sequence[str]) -> re.Pattern[str]:
    """One case-insensitive regex for whole-word `words`: a word character at a keyword's
    edge may not touch another ("txt" is not in "txting"), and spaces match any whitespace."""
    parts = []
    for word in words:
        body = r"\s+".join(re.escape(token) for token in word.split())
        start = r"(?<!\w)" if re.match(r"\w", word) else ""
        end = r"(?!\w)" if re.search(r"\w$", word) else ""
        parts.append(f"{start}{body}{end}")
    return re.compile("|".join(parts), re.IGNORECASE)


class RuleEngine:
    """Which rule decides each text: the firing rule of highest priority, ties to the earlier."""

    def __init__(self, rules: RuleSet) -> None:
        self.rules = rules
        # (-priority, file position): the first rule in this order that fires decides
        ranked = sorted(enumerate(rules.rules), key=lambda pair: (-pair[1].priority, pair[0]))
        self.order = [rule for _, rule in ranked]
        self.searches = {
            rule.name: keyword_regex(rule.value) if rule.kind == "keywords" else re.compile(rule.value)
            for rule in rules.rules
            if rule.kind != "pattern"
        }  # fmt: skip
        self.matcher: Any = None
        patterns = [rule for rule in rules.rules if rule.kind == "pattern"]
        if patterns:
            import spacy
            from spacy.matcher import Matcher

            self.nlp = spacy.blank("en")  # the tokenizer only: patterns read tokens
            self.matcher = Matcher(self.nlp.vocab, validate=True)
            for rule in patterns:
                self.matcher.add(rule.name, [rule.value])

    def decide(self, texts: Sequence[str]) -> list[Rule | None]:
        """The deciding rule of each text; None where none fires (the default label)."""
        return [self._decide(text) for text in texts]

    def _decide(self, text: str) -> Rule | None:
        matched: set[str] | None = None  # pattern rules that fire, found when first needed
        for rule in self.order:
            if rule.kind != "pattern":
                if self.searches[rule.name].search(text):
                    return rule
                continue
            if matched is None:
                doc = self.nlp.make_doc(text)
                matched = {self.nlp.vocab.strings[m] for m, _, _ in self.matcher(doc)}
            if rule.name in matched:
                return rule
        return None


def one_hot(labels: Sequence[str], decided: Sequence[str]) -> np.ndarray:
    proba = np.zeros((len(decided), len(labels)))
    index = {label: i for i, label in enumerate(labels)}
    for row, label in enumerate(decided):
        proba[row, index[label]] = 1.0
    return proba


class TextRules:
    """A text classifier of rules (the `rules` family for text-classification)."""

    family = FAMILY
    task = TASK  # rules serves two tasks: serving asks the model which

    def __init__(self, text: str, *, fmt: str, labels: list[str], origin: str) -> None:
        self.text, self.fmt, self.labels = text, fmt, labels  # the file as written
        self.rules = parse_rules(text, fmt=fmt, origin=origin, labels=labels)
        self.engine = RuleEngine(self.rules)

    @classmethod
    def from_file(cls, file: Path, *, labels: list[str]) -> TextRules:
        text, fmt = read_rules_text(file)
        return cls(text, fmt=fmt, labels=labels, origin=str(file))

    def decide(self, texts: Sequence[str]) -> list[Rule | None]:
        return self.engine.decide(texts)

    def fired(self, texts: Sequence[str]) -> list[str | None]:
        """The name of the rule that decided each text; None where the default did."""
        return [None if rule is None else rule.name for rule in self.decide(texts)]

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        decided = [self.rules.default if r is None else r.label for r in self.decide(texts)]
        return one_hot(self.labels, decided)

    def save(self, path: Path) -> None:
        name = f"{RULES_FILE}.{self.fmt}"  # rules.yaml or rules.jsonl
        save_manifest(path, family=FAMILY, labels=self.labels, extra={"task": TASK, "rules": name})
        (path / name).write_text(self.text, encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> TextRules:
        manifest = load_manifest(path)
        text, fmt = read_rules_text(path / manifest["rules"])
        return cls(text, fmt=fmt, labels=list(manifest["labels"]), origin=manifest["rules"])


class RulesOverride:
    """Hybrid: a learned classifier whose label the rules override wherever one fires (the
    row becomes the rule's one-hot); elsewhere the model's own probabilities. The rules file's
    default is not used: where no rule fires, the model decides."""

    task = TASK

    def __init__(self, model: Any, rules: TextRules) -> None:
        self.model, self.rules = model, rules
        self.family, self.labels = model.family, list(model.labels)

    @classmethod
    def from_file(cls, model: Any, file: Path) -> RulesOverride:
        """`model` overridden by the rules of `file`, whose labels must be the model's."""
        try:
            rules = TextRules.from_file(file, labels=list(model.labels))
        except ParamsError as exc:
            raise ModelError(f"hybrid serving (serve.rules): {exc}") from None
        return cls(model, rules)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        proba = self.model.predict_proba(texts)
        return self.overridden(texts, [""] * len(texts), proba)[1]

    def overridden(
        self, texts: Sequence[str], predicted: Sequence[str], proba: Any
    ) -> tuple[list[str], np.ndarray]:
        """The model's labels and probabilities of `texts` (a row per text, in label order)
        with those of the texts a rule fires on replaced by the rule's label and one-hot:
        what this hybrid answers."""
        labels, out = list(predicted), np.array(proba, dtype=float, copy=True)
        for row, rule in enumerate(self.rules.decide(texts)):
            if rule is not None:
                labels[row], out[row] = rule.label, one_hot(self.labels, [rule.label])[0]
        return labels, out

    def fired(self, texts: Sequence[str]) -> list[str | None]:
        return self.rules.fired(texts)


# ---------------------------------------------------------------------------------------------
# The family's fit


def score_rules(model: TextRules, splits: dict[str, XY]) -> dict[str, float]:
    """`<split>_accuracy` and `<split>_macro_f1` of each non-empty split."""
    from nlpflow.evaluation.metrics import compute_metrics

    scores: dict[str, float] = {}
    for split, (texts, gold) in splits.items():
        if texts:
            found = np.asarray(model.labels)[model.predict_proba(texts).argmax(axis=1)]
            m = compute_metrics(gold, list(found), model.labels)
            scores |= {f"{split}_accuracy": m["accuracy"], f"{split}_macro_f1": m["macro_f1"]}
    return scores


def fit_text_rules(
    train: XY, validation: XY, *, labels: list[str], params: TrainParams,
    on_epoch: EpochCallback | None = None, on_step: EpochCallback | None = None,
    workdir: Path | None = None,
) -> TextRules:  # fmt: skip
    """rules' fit for text-classification: read and check train.rules.patterns, then one
    "epoch" that reports the scores (train's too when someone listens)."""
    if params.rules.patterns is None:
        raise ParamsError(
            "train.rules.patterns is null: text-classification rules come from a rules file; "
            "give its path (docs/training.md, The rules family)"
        )
    if params.rules.from_train:
        raise ParamsError(
            "train.rules.from_train is for token-classification; remove it (text rules come "
            "from train.rules.patterns only)"
        )
    model = TextRules.from_file(Path(params.rules.patterns), labels=list(labels))
    progress = TrainingProgress(FAMILY)
    progress.begin(examples=len(train[0]))
    splits = {"train": train, "val": validation} if on_epoch else {"val": validation}
    scores = score_rules(model, splits)
    progress.finish([{"epoch": 1.0, **scores}])
    if on_epoch is not None:
        on_epoch(1, scores)
    return model
