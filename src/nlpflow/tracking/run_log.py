"""What a run logs: params, metrics, tags, artifacts, its datasets, and metrics linked to a
logged model. Each call names what it was doing, so an unreachable server is reported as such.
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nlpflow.tracking.connection import Connection

if TYPE_CHECKING:
    from mlflow.entities import Param

    from nlpflow.config.params import Params

PARAMS_PER_BATCH = 100  # MLflow's batch limits
METRICS_PER_BATCH = 1000


class RunLogging(Connection):
    def log_params(self, run_id: str, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:6000]) for k, v in params.items()]

        def send(chunk: list[Param]) -> None:
            self.client.log_batch(run_id, params=chunk)

        for start in range(0, len(items), PARAMS_PER_BATCH):
            self._call("logging params", partial(send, items[start : start + PARAMS_PER_BATCH]))

    def log_metrics(self, run_id: str, metrics: dict[str, float], step: int = 0) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items()]
        if batch:
            self._call("logging metrics", lambda: self.client.log_batch(run_id, metrics=batch))

    def set_tags(self, run_id: str, tags: dict[str, Any]) -> None:
        from mlflow.entities import RunTag

        batch = [RunTag(k, str(v)) for k, v in tags.items()]
        if batch:
            self._call("setting tags", lambda: self.client.log_batch(run_id, tags=batch))

    def log_artifact(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        """A file or a folder's files (under `artifact_path`); nothing when `path` is absent."""
        doing = f"uploading {path.name}"
        if path.is_dir():
            self._call(doing, lambda: self.client.log_artifacts(run_id, str(path), artifact_path))
        elif path.exists():
            self._call(doing, lambda: self.client.log_artifact(run_id, str(path), artifact_path))

    def log_datasets(self, run_id: str, *, folder: Path, params: Params) -> None:
        """Log the train, validation and test splits in `folder` (processed parquet files) as
        the run's MLflow datasets: named `<dataset>-<split>`, with the digest of their rows
        (split_digest), the data source (password masked), a schema and a row count, each
        tagged with its context (train, validation, test). The runs table's Dataset column
        shows them, and the logged model's test metrics name the test one."""
        import pandas as pd
        from mlflow.entities import DatasetInput, InputTag

        from nlpflow.config.nlp_tasks import get_nlp_task
        from nlpflow.data.splits import SPLITS
        from nlpflow.tracking.datasets import (
            DATASET_CONTEXT,
            dataset_entity,
            dataset_source,
            split_dataset_name,
        )

        source_type, source = dataset_source(params, self.settings)
        targets = get_nlp_task(params.task).targets
        inputs = []
        for split in SPLITS:
            frame = pd.read_parquet(folder / f"{split}.parquet")
            dataset = dataset_entity(frame, name=split_dataset_name(params, split),
                                     source_type=source_type, source=source,
                                     targets=targets)  # fmt: skip
            inputs.append(DatasetInput(dataset, tags=[InputTag(DATASET_CONTEXT, split)]))
        self._call("logging datasets", lambda: self.client.log_inputs(run_id, datasets=inputs))

    def log_model_metrics(
        self,
        run_id: str,
        *,
        model_id: str,
        metrics: dict[str, float],
        dataset: tuple[str, str] | None,
    ) -> None:
        """Record `metrics` on logged model `model_id` (its page and the Models view show
        them), scored on `dataset` (name, digest). MLflow keeps model metrics with the run's: a
        value the run already holds is sent again with its own timestamp and step, so the
        run's history gets no second point."""
        from mlflow.entities import Metric

        client = self.client
        now, batch = int(time.time() * 1000), []
        name, digest = dataset if dataset is not None else (None, None)
        for key, value in metrics.items():
            history = self._call("reading metrics", partial(client.get_metric_history, run_id, key))
            same = [m for m in history if m.value == value]
            stamp, step = (same[-1].timestamp, same[-1].step) if same else (now, 0)
            batch.append(Metric(key, value, stamp, step, model_id=model_id, dataset_name=name,
                                dataset_digest=digest, run_id=run_id))  # fmt: skip
        for start in range(0, len(batch), METRICS_PER_BATCH):
            chunk = batch[start : start + METRICS_PER_BATCH]
            self._call("linking metrics", partial(client.log_batch, run_id, metrics=chunk))
