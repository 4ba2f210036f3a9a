"""Each stage's code is what its module imports, and only a change to those files moves its key."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from nlpflow.config.params import load_params
from nlpflow.config.settings import Settings
from nlpflow.pipeline.codedeps import NOT_CODE, code_deps, imported_names
from nlpflow.pipeline.fingerprint import stage_key
from nlpflow.pipeline.stages import STAGES, StageContext, get_stage
from tests.conftest import REPO


def _files(name: str) -> set[str]:
    return set(get_stage(name).code_files())


def test_each_stage_code_is_what_it_imports_lazily_and_by_name() -> None:
    train = _files("train")
    assert "nlpflow/training/train.py" in train
    assert "nlpflow/data/augment.py" in train  # imported inside train() when augmenting
    # loaded by name (importlib) from the families' table, never imported as a statement
    assert "nlpflow/training/families/transformer.py" in train
    assert "nlpflow/data/preprocess.py" in _files("evaluate")
    assert "nlpflow/evaluation/stats.py" in _files("register")  # the gate's paired tests
    assert "nlpflow/serving/pyfunc_entry.py" in _files("register")  # models from code
    assert "nlpflow/pipeline/steps/register.py" in _files("register")
    assert not any(f.startswith("nlpflow/training/") for f in _files("gather"))
    assert not any(f.startswith("nlpflow/release/") for f in _files("train"))
    # the table itself and the runners are no stage's code
    for stage in STAGES:
        files = set(stage.code_files())
        assert {"nlpflow/pipeline/stages.py", "nlpflow/pipeline/fingerprint.py"}.isdisjoint(files)
        assert not any(
            f.startswith(("nlpflow/tasks/", "nlpflow/flows/", "nlpflow/cli/")) for f in files
        )
        assert f"nlpflow/pipeline/steps/{stage.name}.py" in files
        assert not files & NOT_CODE.keys()


def test_imports_are_read_everywhere_but_under_type_checking() -> None:
    source = """
import nlpflow.a
from nlpflow.b import c
if TYPE_CHECKING:
    from nlpflow.hidden import X
else:
    import nlpflow.shown
def f():
    from nlpflow.lazy import g
LOADERS = {"x": ("nlpflow.by_name", "Cls")}
family = f"nlpflow.families.{code}"
log = "nlpflow is not a module name"
"""
    assert imported_names(source) == {
        "nlpflow.a", "nlpflow.b", "nlpflow.b.c", "nlpflow.shown", "nlpflow.lazy",
        "nlpflow.lazy.g", "nlpflow.by_name", "nlpflow.families.*",
    }  # fmt: skip


def test_unknown_entry_modules_are_refused() -> None:
    with pytest.raises(ValueError, match=r"no module nlpflow\.pipeline\.steps\.nope"):
        code_deps("nlpflow.pipeline.steps.nope")


@pytest.fixture(scope="module")
def code_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("code") / "nlpflow"
    shutil.copytree(REPO / "src" / "nlpflow", copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def _keys(ctx: StageContext, code: Path) -> dict[str, str | None]:
    return {stage.name: stage_key(stage, ctx, code_root=code) for stage in STAGES}


@pytest.mark.parametrize(
    ("changed", "expected"),
    [
        ("data/preprocess.py", {"preprocess", "evaluate", "register"}),  # the pyfunc cleans too
        ("training/families/transformer.py", {"train", "baseline", "evaluate", "register"}),
        ("evaluation/stats.py", {"evaluate", "register"}),
        ("pipeline/steps/gather.py", {"gather"}),
        ("serving/pyfunc_entry.py", {"register"}),
        ("errors.py", set()),  # NOT_CODE: messages only
        ("cli/main.py", set()),  # no stage imports the CLI
    ],
)
def test_a_code_change_moves_the_keys_of_exactly_the_stages_importing_it(
    changed: str, expected: set[str], code_copy: Path, tmp_path: Path
) -> None:
    params = load_params(REPO / "params.yaml")
    ctx = StageContext(root=tmp_path, params=params, settings=Settings(project_dir=tmp_path))
    (tmp_path / "data/sample").mkdir(parents=True)
    (tmp_path / "data/sample/support_tickets.csv").write_text("text,label\nhi,a\n")
    before = _keys(ctx, code_copy)
    file = code_copy / changed
    original = file.read_text()
    try:
        file.write_text(original + "\n# changed\n")
        after = _keys(ctx, code_copy)
    finally:
        file.write_text(original)
    moved = {name for name in before if before[name] != after[name]}
    assert moved == {s.name for s in STAGES if f"nlpflow/{changed}" in s.code_files(code_copy)}
    assert moved == expected
    assert _keys(ctx, code_copy) == before  # restored: the same keys again
