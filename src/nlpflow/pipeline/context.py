"""What every stage is handed: the project, its params and settings, and the run to log to.

    ctx = StageContext(root=Path("."), params=params, settings=settings)
    run_stage("gather", ctx)   # nlpflow.pipeline.stages

Apart from the stage table so that a stage's module imports this and not the table (a
stage's code is what its module imports: nlpflow.pipeline.codedeps).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from nlpflow.config.params import Params
from nlpflow.config.settings import Settings

if TYPE_CHECKING:
    from nlpflow.tracking.tracker import Tracker

MODEL_SHA256 = "nlpflow.model_sha256"  # run tag: the model folder train wrote (register checks it)
RESUMED_FROM = "nlpflow.resumed_from"  # run tag: the killed attempt whose checkpoint it resumed


class StageContext:
    """What a stage needs: where the project is, its params and settings, and the run to log to.

    A plain class on purpose, not a dataclass: Prefect rebuilds dataclass task arguments while
    looking for futures inside them, and every task must share this one object (and its client).
    """

    def __init__(
        self,
        *,
        root: Path,
        params: Params,
        settings: Settings,
        tracker: Tracker | None = None,  # None runs a stage without tracking
        run_id: str | None = None,
    ) -> None:
        self.root = root
        self.params = params
        self.settings = settings
        self.tracker = tracker
        self.run_id = run_id

    def tracked(self) -> Tracker:
        """The tracker of a context that must have one (the flows' and the sweep's): a context
        made untracked reaching here is a bug in nlpflow, not the user's input."""
        if self.tracker is None:
            raise RuntimeError("this stage context was made without a tracker (tracked=False)")
        return self.tracker

    def path(self, relative: str) -> Path:
        return self.root / relative

    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        if self.tracker is not None and self.run_id is not None:
            self.tracker.log_metrics(self.run_id, metrics, step=step)

    def log_artifact(self, relative: str, artifact_path: str | None = None) -> None:
        if self.tracker is not None and self.run_id is not None:
            self.tracker.log_artifact(self.run_id, self.path(relative), artifact_path)
