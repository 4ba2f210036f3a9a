"""Reading runs back: one run, a search, its experiment's name, its artifacts.

Runs come back as `RunView`s (plain data, no MLflow types). "Not found" is the only answer read
as absent (None); any other failure raises (nlpflow.tracking.connection.failure).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from nlpflow.errors import TrackingError
from nlpflow.tracking.connection import Connection

if TYPE_CHECKING:
    from mlflow.entities import Run


@dataclass(frozen=True)
class DatasetView:
    context: str  # train | validation | test
    name: str
    digest: str


@dataclass(frozen=True)
class RunView:
    run_id: str
    experiment_id: str
    name: str
    status: str  # RUNNING, FINISHED, FAILED, KILLED
    deleted: bool
    start_time: int | None  # milliseconds since the epoch
    end_time: int | None
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    datasets: list[DatasetView] = field(default_factory=list)


def run_view(run: Run) -> RunView:
    from nlpflow.tracking.datasets import DATASET_CONTEXT

    info = run.info
    datasets = [
        DatasetView(context=tag.value, name=found.dataset.name, digest=found.dataset.digest)
        for found in (run.inputs.dataset_inputs if run.inputs else [])
        for tag in found.tags
        if tag.key == DATASET_CONTEXT
    ]
    return RunView(
        run_id=str(info.run_id), experiment_id=str(info.experiment_id), name=info.run_name or "",
        status=str(info.status), deleted=info.lifecycle_stage == "deleted",
        start_time=info.start_time, end_time=info.end_time, tags=dict(run.data.tags),
        params=dict(run.data.params), datasets=datasets,
    )  # fmt: skip


class RunQueries(Connection):
    def find_run(self, run_id: str) -> RunView | None:
        """The run; None when this store does not hold it."""
        found = self._lookup(f"reading run {run_id}", partial(self.client.get_run, run_id))
        return None if found is None else run_view(found)

    def get_run(self, run_id: str) -> RunView:
        """The run; a TrackingError naming the store when it does not hold it."""
        found = self.find_run(run_id)
        if found is None:
            raise TrackingError(
                f"no run {run_id!r} in {self.uri}: point NLPFLOW_TRACKING_URI at the store "
                "that holds it."
            )
        return found

    def search_runs(
        self,
        experiment_ids: list[str],
        *,
        filter_string: str = "",
        order_by: list[str] | None = None,
        max_results: int = 1000,
    ) -> list[RunView]:
        """Runs of the experiments that match MLflow's `filter_string`, in `order_by` order."""
        search = partial(
            self.client.search_runs, experiment_ids, filter_string=filter_string,
            order_by=order_by, max_results=max_results,
        )  # fmt: skip
        return [run_view(run) for run in self._read("searching runs", search)]

    def find_experiment(self, name: str) -> str | None:
        """The id of the experiment named `name`; None when there is none."""
        found = self._read(
            f"looking up experiment {name!r}", partial(self.client.get_experiment_by_name, name)
        )
        return None if found is None else str(found.experiment_id)

    def experiment_name(self, experiment_id: str) -> str | None:
        """The experiment's name; None when the store no longer holds it."""
        found = self._lookup(
            f"reading experiment {experiment_id}",
            partial(self.client.get_experiment, experiment_id),
        )
        return None if found is None else str(found.name)

    def list_artifacts(self, run_id: str, path: str | None = None) -> list[str]:
        """The paths of the run's artifacts directly under `path` (the top when None)."""
        listed = self._read(
            f"listing the artifacts of run {run_id}",
            partial(self.client.list_artifacts, run_id, path),
        )
        return [str(found.path) for found in listed]

    def download_artifact(self, run_id: str, path: str, dst: Path) -> Path | None:
        """Artifact `path` of the run (a file or a folder), downloaded under `dst`; None when
        the run has no such artifact. A store or server that fails raises."""
        parent = path.rpartition("/")[0] or None
        if path not in self.list_artifacts(run_id, parent):
            return None
        doing = f"downloading {path} of run {run_id}"
        local = self._read(doing, partial(self.client.download_artifacts, run_id, path, str(dst)))
        return Path(local)

    def search_experiment_ids(self) -> list[str]:
        """Every active experiment's id."""
        listed = self._call("listing experiments", self.client.search_experiments)
        return [str(e.experiment_id) for e in listed]
