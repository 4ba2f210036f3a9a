"""Logging a trained model to MLflow as the raw-text pyfunc, and registering it as a version.

The model is an MLflow 3 logged model of the pipeline's run (the runs table's Models column),
with the run's test metrics linked to it and to the test split's dataset; the pyfunc in it is
"models from code" (nlpflow/serving/pyfunc_entry.py), so no class is pickled.

    version = publish_model(tracker, run_id=run_id, model_dir=Path("models/model"),
                            model_name="nlpflow-support-tickets", params=params)
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nlpflow.training.families import load_manifest

if TYPE_CHECKING:
    from nlpflow.config.params import Params
    from nlpflow.tracking.model_files import PyfuncSpec
    from nlpflow.tracking.model_registry import LoggedModelView
    from nlpflow.tracking.tracker import Tracker

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # src/nlpflow: shipped inside every model
PYFUNC_ENTRY = PACKAGE_DIR / "serving" / "pyfunc_entry.py"  # the pyfunc, as models from code
INPUT_EXAMPLE = "Hello, my order arrived damaged and I would like a refund."
_REQUIREMENTS = ("mlflow", "pandas", "numpy", "scikit-learn", "spacy", "spacy-lookups-data",
                 "torch", "transformers", "pydantic", "joblib", "skops")  # fmt: skip


def _requirements(manifest: dict[str, Any]) -> list[str]:
    """The packages serving needs, pinned to the versions trained with; the NER pipeline
    only when the model's text was entity-masked (its package name is the pipeline's), and
    those the model's manifest names (`requirements`: a fasttext model hashes n-grams with
    gensim)."""
    names = list(_REQUIREMENTS) + list(manifest.get("requirements") or [])
    preprocess = manifest.get("preprocess") or {}
    if preprocess.get("mask_entities"):
        names.append(str(preprocess.get("ner_pipeline", "")).replace("_", "-"))
    pins = []
    for name in names:
        try:
            pins.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            continue
    return pins


def serving_config(params: Params) -> dict[str, Any]:
    """What the served model enforces and how it runs, baked into the registered version."""
    from nlpflow.serving.shaping import CONFIG_KEY, InputShape

    return {
        "max_chars": params.serve.max_chars,
        "max_batch": params.serve.max_batch,
        "quantize": params.register_.quantize,
        # gather's shaping (columns, fields joined, labels): batch inference and the served
        # model shape their input as training did, with no run to look up (serving.shaping)
        CONFIG_KEY: InputShape.from_data(params.data).to_config(),
    }


def hybrid_rules(model_dir: Path, params: Params, root: Path | None) -> dict[str, str]:
    """The pyfunc's artifact of hybrid serving (serve.rules, under `root`, the project folder;
    None: the working directory), checked against the model's labels; {} without one."""
    from nlpflow.errors import ParamsError
    from nlpflow.serving.pyfunc import RULES_ARTIFACT
    from nlpflow.training.families.rules_text import read_rules

    if params.serve.rules is None:
        return {}
    file = (root or Path()) / params.serve.rules
    try:
        read_rules(file, labels=list(load_manifest(model_dir)["labels"]))
    except ParamsError as exc:
        raise ParamsError(f"serve.rules: {exc}") from None
    return {RULES_ARTIFACT: str(file)}


def pyfunc_spec(model_dir: Path, params: Params, *, root: Path | None = None) -> PyfuncSpec:
    """The raw-text pyfunc of `model_dir` as MLflow "models from code": the entry file
    (nlpflow/serving/pyfunc_entry.py) is the python_model, so nothing is cloudpickled. With
    serve.rules (read under `root`), the rules file goes with it: hybrid serving."""
    from nlpflow.serving.nlp import output
    from nlpflow.serving.pyfunc import MODEL_ARTIFACT, TEXT_COLUMN
    from nlpflow.serving.shaping import InputShape
    from nlpflow.tracking.model_files import PyfuncSpec

    manifest = load_manifest(model_dir)
    outputs = output(params.task).output_schema(manifest["labels"])
    shape = InputShape.from_data(params.data)
    # a model trained on several fields (or one not named text) takes records of them too:
    # every column optional, the pyfunc refuses a request with neither text nor the fields
    fields = [c for c in shape.text_columns if c != TEXT_COLUMN] if shape.fields else []
    return PyfuncSpec(
        entry=PYFUNC_ENTRY,
        artifacts={MODEL_ARTIFACT: str(model_dir)} | hybrid_rules(model_dir, params, root),
        # Ship nlpflow's own code with the model so it loads where nlpflow isn't installed.
        code_paths=[str(PACKAGE_DIR)],
        requirements=_requirements(manifest),
        inputs={TEXT_COLUMN: "string"} | dict.fromkeys(fields, "string"),
        optional_inputs=(TEXT_COLUMN, *fields) if fields else (),
        outputs=outputs,
        # What a request looks like, for the model page and `mlflow models serve` users: a
        # made-up text, never a row of the (possibly private) data. A one-row dict, not a
        # DataFrame: MLflow's DataFrame example code trips a pandas 4 deprecation warning.
        input_example={TEXT_COLUMN: INPUT_EXAMPLE},
        model_config=serving_config(params),  # serving limits and quantization (load_context)
    )


def log_model(
    tracker: Tracker,
    *,
    run_id: str,
    model_dir: Path,
    params: Params,
    tags: dict[str, str] | None = None,
    root: Path | None = None,
) -> LoggedModelView:
    """Log `model_dir` as an MLflow 3 logged model of run `run_id`, named for its family,
    holding the raw-text pyfunc (Tracker.log_pyfunc: a new logged model each call). `root`:
    the project folder, where serve.rules is read."""
    family = str(load_manifest(model_dir)["family"])
    return tracker.log_pyfunc(
        # the logged model's type is its NLP task: MLflow searches and compares models by it
        run_id, pyfunc_spec(model_dir, params, root=root), name=family, model_type=params.task,
        tags={"family": family} | (tags or {}),
    )  # fmt: skip


def tracked_test_metrics(metrics: dict[str, Any], main: str) -> dict[str, float]:
    """metrics.json's test-set scores (test/<metric> and the main metric's interval) under the
    names evaluate logs them by: evaluate's own naming, so the two cannot drift apart."""
    from nlpflow.evaluation.report import EvaluateReport

    report = EvaluateReport(
        metrics=metrics, confusion=[], labels=[], rows=0, main_metric=main,
        ci=metrics.get("ci") or {},
    )  # fmt: skip
    return {k: v for k, v in report.tracked_metrics().items() if k.startswith("test/")}


def publish_model(
    tracker: Tracker,
    *,
    run_id: str,
    model_dir: Path,
    model_name: str,
    params: Params,
    tags: dict[str, str] | None = None,
    root: Path | None = None,
) -> int:
    """Log `model_dir` as the raw-text pyfunc, a logged model of `run_id`, and register it as
    a new version of `model_name` (no aliases moved). Returns the version number."""
    logged = log_model(tracker, run_id=run_id, model_dir=model_dir, params=params, root=root)
    return tracker.register_logged_model(
        model_name, logged, run_id=run_id, tags={"run_id": run_id} | (tags or {})
    )
