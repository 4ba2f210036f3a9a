"""The one stage table both runners execute.

    from nlpflow.pipeline.stages import STAGES, get_stage, run_stage
    run_stage("preprocess", ctx)     # what `nlpflow stage preprocess` and the flow's task call

`dvc.yaml` is generated from this table (nlpflow.pipeline.dvcyaml: `nlpflow dvc-yaml`) and runs
`nlpflow stage NAME`; the Prefect flow runs one task per row. Both call `run_stage`, which runs
the `run(ctx)` of the stage's module (nlpflow.pipeline.steps.NAME) on the paths below and logs
its report to the pipeline's MLflow run.

A stage's code is what its module imports, computed (nlpflow.pipeline.codedeps): dvc.yaml lists
those files as the stage's deps and the stage's Prefect cache key hashes the same files, so a
code change re-runs the same stages under both runners. Whatever else one runner or the other
does differently for a stage is a field of its row, not a check of its name elsewhere.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel

from nlpflow.errors import NlpflowError
from nlpflow.pipeline.codedeps import code_deps, code_hash
from nlpflow.pipeline.context import MODEL_SHA256, RESUMED_FROM, StageContext
from nlpflow.pipeline.keys import (
    KeyParts,
    baseline_parts,
    registry_parts,
    source_parts,
    train_parts,
)
from nlpflow.pipeline.paths import (
    ACCEPTED,
    BASELINE,
    BASELINE_PARAMS,
    BEHAVIOURAL,
    CHECKPOINTS,
    EVALUATION,
    GATHERED,
    GX_PROJECT,
    HTTP_CACHE,
    METRICS,
    MODEL,
    MODEL_CARD,
    PLOTS,
    PREPROCESS_CACHE,
    PROCESSED,
    QUARANTINE,
    REGISTRATION,
    SQL_SNAPSHOT,
    TRAIN_HISTORY,
    TRAIN_PARAMS,
    VALIDATED,
    VALIDATION,
)
from nlpflow.pipeline.steps.train_params import TrainParamsReport
from nlpflow.pipeline.steps.validate import accepted_profile

__all__ = [  # the names importers take from here (the paths and the context live apart)
    "ACCEPTED", "BASELINE", "BASELINE_PARAMS", "BEHAVIOURAL", "CHECKPOINTS", "EVALUATION", "GATHERED",
    "GX_PROJECT", "HTTP_CACHE", "METRICS", "MODEL", "MODEL_CARD", "MODEL_SHA256", "PLOTS",
    "PREPROCESS_CACHE", "PROCESSED", "QUARANTINE", "REGISTRATION", "RESUMED_FROM",
    "SQL_SNAPSHOT", "STAGES", "STAGE_NAMES", "TRAIN_HISTORY", "TRAIN_PARAMS", "VALIDATED",
    "VALIDATION", "Stage", "StageContext", "TrainParamsReport", "accepted_profile",
    "get_stage", "model_stage", "run_stage", "snapshot_stage", "stage_names",
]  # fmt: skip


@dataclass(frozen=True)
class Stage:
    name: str
    step: str  # the module whose run(ctx) does the stage: what it imports is the stage's code
    deps: tuple[str, ...]  # data the stage reads (its code deps are computed: code_files)
    outs: tuple[str, ...]  # everything it writes
    params: tuple[str, ...]  # params.yaml sections it reads
    report: str  # "module:Class" its run returns: a cached result is rebuilt as this class
    # Prefect retries: I/O stages (transient network and database errors), and train, which
    # resumes from its last checkpoint after a crash (train.checkpoints.resume: auto)
    retries: int = 0
    # False: bookkeeping that logs nothing; run alone by `dvc repro` (a knob no other stage
    # reads changed) it must not open an MLflow run that no later stage would close
    tracked: bool = True
    # Cache-key parts beyond deps, params and code (nlpflow.pipeline.keys); None from it: the
    # stage cannot be cached and always runs
    key_parts: Callable[[StageContext], KeyParts | None] | None = field(default=None, repr=False)
    # Modules the stage's outputs run without the stage importing them: their code is the
    # stage's code too
    also_runs: tuple[str, ...] = ()
    pushed: bool = False  # its outputs go to the DVC remote (nlpflow.pipeline.remote)
    snapshot: str | None = None  # the out that is the run's data: a skip is decided after it
    model: str | None = None  # the out that is the run's model: tagged on the run, registered
    gpu: bool = False  # its task takes the `gpu` tag when the family trains on a GPU
    prepares: bool = False  # a data stage a sweep runs once before its trials
    # `nlpflow stage` records its run for `nlpflow reproduce` after this stage: its metrics
    # are what reproduce compares
    records_run: bool = False
    registers: bool = False  # registers a model version: a run failing later withdraws it
    # dvc.yaml only (nlpflow.pipeline.dvcyaml):
    dvc_deps: tuple[str, ...] = ()  # templated deps; the cache key reads them through key_parts
    uncached: tuple[str, ...] = ()  # outs git tracks, not DVC's cache (`cache: false`)
    metrics: tuple[str, ...] = ()  # outs that are DVC metrics files
    # comments dvc.yaml shows: on the stage (key: its name) or on one of its deps, params, outs
    notes: dict[str, str] = field(default_factory=dict, hash=False, compare=False, repr=False)

    def run(self, ctx: StageContext) -> BaseModel:
        result: BaseModel = importlib.import_module(self.step).run(ctx)
        return result

    def report_class(self) -> type[BaseModel]:
        module, name = self.report.split(":")
        cls: type[BaseModel] = getattr(importlib.import_module(module), name)
        return cls

    def code_files(self, root: Path | None = None) -> tuple[str, ...]:
        """Its code: the nlpflow files its module (and also_runs) import, "nlpflow/..."."""
        return code_deps(self.step, *self.also_runs, root=root)

    def code_version(self, root: Path | None = None) -> str:
        return code_hash(self.step, *self.also_runs, root=root)


_STEPS = "nlpflow.pipeline.steps"
_TRAIN_REPORT = "nlpflow.training.train:TrainReport"

STAGES: tuple[Stage, ...] = (
    Stage(
        "gather", f"{_STEPS}.gather", (), (GATHERED,), ("data",),
        "nlpflow.data.gather:GatherReport",
        retries=2, key_parts=source_parts, pushed=True, snapshot=GATHERED, prepares=True,
        dvc_deps=("${data.source}",),
    ),
    Stage(
        "validate", f"{_STEPS}.validate",
        (GATHERED, GX_PROJECT, BEHAVIOURAL),  # the behavioural file must fit the data's labels
        (VALIDATION, VALIDATED, QUARANTINE),
        ("data", "validate", "evaluate.behavioural"),
        "nlpflow.data.validation:ValidationReport",
        pushed=True, prepares=True,
        notes={
            GX_PROJECT: "the suite is rewritten here when validate params change: commit it with them",
            BEHAVIOURAL: "checked against the data's labels before training",
        },
    ),
    Stage(
        "preprocess", f"{_STEPS}.preprocess", (VALIDATED,), (PROCESSED,), ("preprocess",),
        "nlpflow.data.preprocess:PreprocessReport",
        pushed=True, prepares=True,
    ),
    Stage(
        "train_params", f"{_STEPS}.train_params", (), (TRAIN_PARAMS, BASELINE_PARAMS),
        ("train",), f"{_STEPS}.train_params:TrainParamsReport",
        tracked=False, uncached=(TRAIN_PARAMS, BASELINE_PARAMS),
        notes={"train_params": "the train params the model's and the baseline's families read: "
               "train and baseline depend on these only"},
    ),
    Stage(
        "train", f"{_STEPS}.train", (PROCESSED, TRAIN_PARAMS), (MODEL, TRAIN_HISTORY),
        ("data.labels", "preprocess"), _TRAIN_REPORT,
        retries=1, key_parts=train_parts, pushed=True, model=MODEL, gpu=True,
        uncached=(TRAIN_HISTORY,),
        notes={TRAIN_HISTORY: "drawn by plots: below; git-tracked, as metrics are"},
    ),
    Stage(
        "baseline", f"{_STEPS}.baseline", (PROCESSED, BASELINE_PARAMS), (BASELINE,),
        ("data.labels",), _TRAIN_REPORT,
        key_parts=baseline_parts, pushed=True,
    ),
    Stage(
        "evaluate", f"{_STEPS}.evaluate", (MODEL, BASELINE, PROCESSED, BEHAVIOURAL),
        # not `task`: a task is served by its own families, so changing it changes
        # train.family, which re-runs train and so this stage; listing it would make
        # `dvc repro` refuse every params.yaml written before the key existed
        (METRICS, PLOTS, EVALUATION), ("evaluate",),
        "nlpflow.evaluation.report:EvaluateReport",
        records_run=True, uncached=(METRICS, PLOTS, EVALUATION), metrics=(METRICS,),
        notes={PLOTS: "the data of plots: below, and PNGs of the same charts for MLflow"},
    ),
    Stage(
        "register", f"{_STEPS}.register", (MODEL, METRICS, EVALUATION),
        (REGISTRATION, MODEL_CARD), ("evaluate", "register", "serve"),  # not task: evaluate's
        "nlpflow.release.registry:RegistrationReport",
        retries=2, key_parts=registry_parts, registers=True,
        # the registered model's own code: MLflow runs this file to load it (models from code)
        also_runs=("nlpflow.serving.pyfunc_entry",),
        uncached=(REGISTRATION, MODEL_CARD),
        notes={"evaluate": "the gate re-scores the champion's slices and paired tests with these"},
    ),
)  # fmt: skip
STAGE_NAMES = tuple(s.name for s in STAGES)


def stage_names() -> tuple[str, ...]:
    """The stages in the order both runners run them (for help texts and messages)."""
    return STAGE_NAMES


def get_stage(name: str) -> Stage:
    for stage in STAGES:
        if stage.name == name:
            return stage
    raise NlpflowError(f"unknown stage {name!r}; stages are {', '.join(STAGE_NAMES)}")


def model_stage() -> Stage:
    """The stage that trains the run's model (Stage.model)."""
    return next(stage for stage in STAGES if stage.model is not None)


def snapshot_stage() -> Stage:
    """The stage whose output is the run's data snapshot (Stage.snapshot)."""
    return next(stage for stage in STAGES if stage.snapshot is not None)


def run_stage(name: str, ctx: StageContext) -> BaseModel:
    return get_stage(name).run(ctx)
