"""The schema of a named-entity behavioural file, and reading it with errors that name the line.

    suite = load_suite(Path("configs/behavioural/wnut17.yaml"))
    check_types(suite, ["person", "location"], path=...)  # ParamsError: a type the model lacks

Two kinds of test (nlpflow.evaluation.ner.behavioural runs them):
- `mft`: sentences with the entities they must get, `{text, label}` each;
- `invariance`: a `perturbation` (`swap` an entity for another name of its type from the
  test's `swap:` lists, `casing`, `typos`) over `texts`, `examples` (texts with their entities)
  or `from_test: N` test sentences (with their gold entities).
See configs/behavioural/ner_sample.yaml for a commented example.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from nlpflow.errors import ParamsError

EXAMPLE_FILE = "configs/behavioural/ner_sample.yaml"  # named in every error: the format to copy


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Entity(_Strict):
    text: str = Field(min_length=1, description="The entity as written in the example's text.")
    label: str = Field(min_length=1, description="Its entity type.")


class Example(_Strict):
    text: str = Field(min_length=1)
    entities: list[Entity] = Field(default=[], description="Every entity the text holds.")

    @model_validator(mode="after")
    def _entities_in_text(self) -> Example:
        locate(self)  # raises when an entity is not in the text
        return self


def locate(example: Example) -> list[dict[str, Any]]:
    """The entities as {start, end, label, text}: each at the first occurrence of its text
    that no earlier entity took, so a name written twice can be listed twice."""
    taken: list[tuple[int, int]] = []
    records = []
    for entity in example.entities:
        at = example.text.find(entity.text)
        while at >= 0 and any(at < e and s < at + len(entity.text) for s, e in taken):
            at = example.text.find(entity.text, at + 1)
        if at < 0:
            raise ValueError(
                f"entity {entity.text!r} is not in the text {example.text!r} (or is listed more "
                "often than it occurs): write it exactly as in the text"
            )
        taken.append((at, at + len(entity.text)))
        records.append({"start": at, "end": at + len(entity.text), "label": entity.label,
                        "text": entity.text})  # fmt: skip
    return sorted(records, key=lambda r: r["start"])


class MftTest(_Strict):
    name: str = Field(min_length=1, description="Unique; names the test in reports and MLflow.")
    type: Literal["mft"]
    examples: list[Example] = Field(min_length=1)
    allow_extra: bool = Field(
        default=False,
        description="Pass when the expected entities are among those predicted. By default the "
        "predicted (text, label) pairs must equal the expected ones: an extra entity fails.",
    )


class InvarianceTest(_Strict):
    name: str = Field(min_length=1, description="Unique; names the test in reports and MLflow.")
    type: Literal["invariance"]
    perturbation: Literal["swap", "casing", "typos"]
    swap: dict[str, list[str]] | None = Field(
        default=None, description="swap: entity type -> names to put in place of its entities."
    )
    casing: Literal["lower", "upper", "title"] = "lower"
    typos: int = Field(default=1, ge=1, le=5, description="typos: adjacent letter swaps.")
    within: Literal["text", "entities", "context"] = Field(
        default="text", description="casing/typos: where to change the text (context: outside "
        "the entities)."
    )  # fmt: skip
    texts: list[str] | None = Field(default=None, description="Raw texts (entities: predicted).")
    examples: list[Example] | None = Field(default=None, description="Texts with entities.")
    from_test: int | None = Field(default=None, ge=1, description="Draw up to N test sentences.")

    @model_validator(mode="after")
    def _consistent(self) -> InvarianceTest:
        sources = [s for s in (self.texts, self.examples, self.from_test) if s is not None]
        if len(sources) != 1:
            raise ValueError("give exactly one of texts, examples or from_test")
        if self.texts == [] or self.examples == []:
            raise ValueError("texts/examples is empty")
        if (self.perturbation == "swap") != (self.swap is not None):
            raise ValueError(
                "perturbation swap needs `swap: {type: [names, ...]}`, and only swap takes one"
            )
        if self.swap is not None and (not self.swap or not all(self.swap.values())):
            raise ValueError("swap: give at least one type, each with at least one name")
        if self.perturbation == "swap" and self.within != "text":
            raise ValueError("within applies to casing and typos only")
        return self


NerTest = Annotated[MftTest | InvarianceTest, Field(discriminator="type")]


class NerSuite(_Strict):
    tests: list[NerTest] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> NerSuite:
        from nlpflow.evaluation.behavioural_suite import refuse_repeated_names

        refuse_repeated_names([t.name for t in self.tests])
        return self


def named_types(test: MftTest | InvarianceTest) -> list[str]:
    """The entity types a test names (its examples' labels and its swap lists' keys)."""
    examples = test.examples or []
    swap = list(test.swap or {}) if isinstance(test, InvarianceTest) else []
    return sorted({e.label for x in examples for e in x.entities} | set(swap))


def load_suite(path: Path) -> NerSuite:
    """Read and check an entity behavioural file: each problem names the file, its line, the
    test and the key."""
    import yaml

    if not path.is_file():
        raise ParamsError(
            f"behavioural test file {path} does not exist: create it (see {EXAMPLE_FILE}) or "
            "set evaluate.behavioural: null to run none."
        )
    text = path.read_text(encoding="utf-8")
    try:
        tree = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(tree, dict):
        raise ParamsError(f"{path}:1: expected a mapping with a `tests:` list at the top.")
    try:
        return NerSuite.model_validate(tree)
    except ValidationError as exc:
        problems = [_describe(error, tree, text, path) for error in exc.errors()]
        raise ParamsError(
            "; ".join(problems) + f" (the format: {EXAMPLE_FILE}, or the module docstring of "
            "nlpflow.evaluation.ner.behavioural)"
        ) from None


def check_types(suite: NerSuite, types: list[str], *, path: Path) -> None:
    """Every entity type the file names must be one the model predicts."""
    for i, test in enumerate(suite.tests):
        unknown = [t for t in named_types(test) if t not in types]
        if unknown:
            line = line_of(path.read_text(encoding="utf-8"), ["tests", i])
            raise ParamsError(
                f"{path}:{line}: test {test.name!r} names entity type(s) {', '.join(unknown)}, "
                f"which the model does not predict; its types are {', '.join(types)}. Fix the "
                "type names (or map the data's types with data.label_map)."
            )


def _describe(error: Any, tree: dict[str, Any], text: str, path: Path) -> str:
    """`file:14: tests[2] (swap_people).swap: Field required` from one pydantic error."""
    loc, parts = list(error["loc"]), []
    rest = loc
    if len(loc) >= 2 and loc[0] == "tests" and isinstance(loc[1], int):
        tests = tree.get("tests")
        test = tests[loc[1]] if isinstance(tests, list) and loc[1] < len(tests) else None
        name = test.get("name") if isinstance(test, dict) else None
        parts.append(f"tests[{loc[1]}]" + (f" ({name})" if name else ""))
        rest = loc[2:]
        if rest and rest[0] in ("mft", "invariance"):
            rest = rest[1:]  # the discriminator's tag, not a key of the file
    parts += [f"[{p}]" if isinstance(p, int) else str(p) for p in rest]
    where = ".".join(parts).replace(".[", "[") or "top level"
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key (check its spelling and the documented keys)"
    elif error["type"] == "missing":
        message = "missing: add this key"
    elif error["type"] == "union_tag_invalid":
        message = f"unknown test type {error['input'].get('type')!r}: use mft or invariance"
    elif error["type"] == "union_tag_not_found":
        message = "no `type:`: give type: mft or type: invariance"
    return f"{path}:{line_of(text, loc)}: {where}: {message}"


def line_of(text: str, loc: list[Any]) -> int:
    """The 1-based line of the deepest node of `loc` found in the YAML (keys the file does not
    hold, like a discriminator's tag or a missing key, are passed over)."""
    import yaml

    node = yaml.compose(text)
    line = node.start_mark.line + 1 if node is not None else 1
    for part in loc:
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            found = next(((k, v) for k, v in node.value if k.value == part), None)
            if found is None:
                continue
            line, node = found[0].start_mark.line + 1, found[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                break
            node = node.value[part]
            line = node.start_mark.line + 1
    return line


def check_fit(path: Path, types: Sequence[str]) -> Any:
    """validate's check before training (classification's check_fit for entities): the file
    must parse and name only the data's entity types (ParamsError); classification's sample as
    shipped fits, all its tests left out (behavioural_json runs none of them). Here, beside
    the suite's format, so that validate depends on no scoring code."""
    from nlpflow.evaluation.behavioural import BehaviouralFit, is_sample, load_behavioural
    from nlpflow.evaluation.behavioural_suite import named_labels

    if is_sample(path):
        tests = load_behavioural(path).tests
        return BehaviouralFit(path=str(path), sample=True,
                              left_out={t.name: sorted(set(named_labels(t))) for t in tests})  # fmt: skip
    check_types(load_suite(path), list(types), path=path)
    return BehaviouralFit(path=str(path), sample=False)
