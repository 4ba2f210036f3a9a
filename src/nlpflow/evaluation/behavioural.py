"""Behavioural tests in the style of CheckList (Ribeiro et al., ACL 2020), from a YAML file.

Three kinds, each a list of cases that pass or fail:
- invariance: a perturbation that must not change the prediction (`typos`, `person_names`,
  `punctuation`), over texts listed in the file or `from_test: N` seeded test rows;
- directional: a transform (`add_negation`, or `append:` / `prepend:` a text) and an
  expectation on one label: its probability must `increase` or `decrease`, or the prediction
  must `flip` away from it;
- mft (minimum functionality): short canonical texts with the labels they must get.

Texts are raw: the caller's `predict` cleans them as serving does, then predicts. Example file:

    tests:
      - {name: typos, type: invariance, perturbation: typos, from_test: 50}
      - name: negation_lowers_pos
        type: directional
        transform: add_negation
        label: pos
        expect: decrease
        from_test: 50
        predicted_as: pos
      - name: canonical
        type: mft
        examples:
          - {text: "a wonderful, moving film", label: pos}
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from nlpflow.errors import ParamsError

# The suite's schema, its perturbations and its runner live apart; importable from here too.
from nlpflow.evaluation.behavioural_run import MAX_FAILURES as MAX_FAILURES
from nlpflow.evaluation.behavioural_run import run_behavioural as run_behavioural
from nlpflow.evaluation.behavioural_suite import (
    BehaviouralReport as BehaviouralReport,
)
from nlpflow.evaluation.behavioural_suite import (
    BehaviouralResult as BehaviouralResult,
)
from nlpflow.evaluation.behavioural_suite import (
    BehaviouralSuite,
    named_labels,
)
from nlpflow.evaluation.behavioural_suite import Predict as Predict
from nlpflow.evaluation.perturbations import FIRST_NAMES as FIRST_NAMES
from nlpflow.evaluation.perturbations import add_negation as add_negation
from nlpflow.evaluation.perturbations import add_typos as add_typos
from nlpflow.evaluation.perturbations import perturb as perturb
from nlpflow.evaluation.perturbations import swap_names as swap_names
from nlpflow.evaluation.perturbations import toggle_punctuation as toggle_punctuation
from nlpflow.evaluation.perturbations import transform as transform

# --- the file ---------------------------------------------------------------------------------


def load_behavioural(path: Path) -> BehaviouralSuite:
    """Read and validate a behavioural test file; every problem names the file and the key."""
    import yaml

    if not path.is_file():
        raise ParamsError(
            f"behavioural test file {path} does not exist: create it (see behavioural.yaml "
            "in the nlpflow repository) or set evaluate.behavioural: null to run none."
        )
    try:
        tree = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(tree, dict):
        raise ParamsError(f"{path}: expected a mapping with a `tests:` list at the top.")
    try:
        return BehaviouralSuite.model_validate(tree)
    except ValidationError as exc:
        problems = "; ".join(_describe(error, tree) for error in exc.errors())
        raise ParamsError(f"{path}: {problems}") from None


def _describe(error: Any, tree: dict[str, Any]) -> str:
    """`tests[2] (negation).expect: Input should be ...` from one pydantic error."""
    loc, parts = list(error["loc"]), []
    if len(loc) >= 2 and loc[0] == "tests" and isinstance(loc[1], int):
        test = (tree.get("tests") or [None] * (loc[1] + 1))[loc[1]]
        name = test.get("name") if isinstance(test, dict) else None
        parts.append(f"tests[{loc[1]}]" + (f" ({name})" if name else ""))
        loc = loc[2:]
        if loc and loc[0] in ("invariance", "directional", "mft"):
            loc = loc[1:]  # the discriminator's tag, not a key of the file
    parts += [f"[{p}]" if isinstance(p, int) else str(p) for p in loc]
    where = ".".join(parts).replace(".[", "[") or "top level"
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key (check its spelling and the documented keys)"
    return f"{where}: {message}"


# The digest of the sample project's behavioural.yaml as shipped (its parsed content, so
# comments and layout do not count). That file names the sample's labels; on other data its
# tests naming absent labels are left out with a warning. Any other file is the user's own and
# must fit the data (checked in validate, before training). tests/unit/test_behavioural_fit.py
# fails when behavioural.yaml changes without this digest.
SAMPLE_SUITE_SHA256 = "e54d7b127c491b1215c22f75bcddc088816dac662537d45242bfccad72fd9043"


def suite_digest(path: Path) -> str | None:
    """sha256 of the file's parsed YAML (None when it does not parse)."""
    import hashlib
    import json

    import yaml

    try:
        tree = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    return hashlib.sha256(json.dumps(tree, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def is_sample(path: Path) -> bool:
    return suite_digest(path) == SAMPLE_SUITE_SHA256


def unknown_labels(suite: BehaviouralSuite, labels: Sequence[str]) -> dict[str, list[str]]:
    """test name -> the labels it names that are not among `labels`, for tests naming any."""
    out = {}
    for test in suite.tests:
        unknown = sorted({n for n in named_labels(test) if n not in labels})
        if unknown:
            out[test.name] = unknown
    return out


def check_labels(suite: BehaviouralSuite, labels: Sequence[str], *, path: Path) -> None:
    """Every label the file names must be one the model predicts; the sample's file as
    shipped is exempt (run_behavioural leaves out its tests that do not fit)."""
    unknown = unknown_labels(suite, labels)
    if unknown and not is_sample(path):
        name, missing = next(iter(unknown.items()))
        raise ParamsError(
            f"{path}: test {name!r} names label(s) {', '.join(missing)}, which the "
            f"model does not predict; its labels are {', '.join(labels)}."
        )


class BehaviouralFit(BaseModel):
    """How the behavioural file fits the data's labels, decided before training."""

    path: str
    sample: bool  # the sample project's file, as shipped
    left_out: dict[str, list[str]] = {}  # test -> labels it names that the data lacks

    def warning(self) -> str | None:
        if not self.left_out:
            return None
        tests = ", ".join(f"{t} ({', '.join(labels)})" for t, labels in self.left_out.items())
        return (
            f"{self.path} is the sample project's behavioural file and does not fit this "
            f"data's labels: its tests {tests} name labels the data lacks, so evaluate runs "
            "without them. Write behavioural tests for your labels in it (see its comments), "
            "or set evaluate.behavioural: null."
        )


def check_fit(path: Path, labels: Sequence[str]) -> BehaviouralFit:
    """Before training: the user's own file must name only the data's labels (ParamsError);
    the sample's file as shipped is fitted, its tests that name absent labels left out."""
    suite = load_behavioural(path)
    unknown, sample = unknown_labels(suite, labels), is_sample(path)
    if unknown and not sample:
        tests = "; ".join(f"{t} names {', '.join(missing)}" for t, missing in unknown.items())
        raise ParamsError(
            f"{path} does not fit the data: {tests}, but the data's labels are "
            f"{', '.join(labels)}. Fix those tests' labels (or map the data's labels with "
            "data.label_map), or set evaluate.behavioural: null. Checked before training, "
            "so no model is trained only to fail in evaluate."
        )
    return BehaviouralFit(path=str(path), sample=sample, left_out=unknown)
