"""The run's datasets as MLflow records them: the train, validation and test splits, each
named `<dataset>-<split>` with the digest of its rows, its source and a schema.

    tracker.log_datasets(run_id, folder=Path("data/processed"), params=params)
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from mlflow.entities import Dataset

    from nlpflow.config.params import Params
    from nlpflow.config.settings import Settings

DATASET_CONTEXT = "mlflow.data.context"  # train | validation | test, as MLflow's UI reads it
DIGEST_CHARS = 32  # of a split's sha256: MLflow stores at most 36 characters of a digest


def split_dataset_name(params: Params, split: str) -> str:
    """`support_tickets-train`, `glue/sst2-test`: the data's name (nlpflow.config.naming) and split."""
    from nlpflow.config.naming import dataset_name
    from nlpflow.config.source_kinds import is_hf

    data = params.data
    config = f"/{data.hf_config}" if is_hf(data.source) and data.hf_config else ""
    return f"{dataset_name(data.source)}{config}-{split}"


def split_digest(texts: Any, labels: Any) -> str:
    """The first DIGEST_CHARS hex digits of the sha256 of a split's rows (raw text, tab, label,
    newline, in order): the same rows give the same digest whatever file holds them, and the
    test split's is the start of its registered versions' `test_set_sha256` tag."""
    import hashlib

    digest = hashlib.sha256()
    for text, label in zip(texts, labels, strict=True):
        digest.update(f"{text}\t{label}\n".encode())
    return digest.hexdigest()[:DIGEST_CHARS]


def target_texts(values: Any) -> list[str]:
    """A split's targets as split_digest hashes them: a label as text; a list per row (a tag
    per token; a numpy array once read from parquet) joined by single spaces, as evaluate's
    predictions keep token tags."""
    return [
        str(v) if isinstance(v, str) or not hasattr(v, "__iter__") else " ".join(map(str, v))
        for v in values
    ]


def dataset_source(params: Params, settings: Settings) -> tuple[str, str]:
    """(source type, source JSON) of the data as MLflow's UI shows it: a Hugging Face dataset,
    a URL, a database (password masked) or a local path."""
    from nlpflow.config.source_kinds import MLFLOW_SOURCE_TYPES, source_kind

    data = params.data
    public = str(params.public_dict()["data"]["source"])
    kind = source_kind(data.source)
    match kind:
        case "hf":
            spec: dict[str, Any] = {"path": public.removeprefix("hf:"),
                                    "config_name": data.hf_config, "revision": data.hf_revision}  # fmt: skip
        case "http":
            spec = {"url": public}
        case "sql":
            spec = {"url": public, "query": data.query}
        case _:
            spec = {"uri": str(settings.resolve_data(data.source))}
    return MLFLOW_SOURCE_TYPES[kind], json.dumps(spec)


def dataset_entity(
    frame: pd.DataFrame, *, name: str, source_type: str, source: str, targets: str = "label"
) -> Dataset:
    """`targets`: the column the NLP task learns (NlpTask.targets), hashed with the text."""
    from mlflow.entities import Dataset
    from mlflow.types import ColSpec, Schema, TensorSpec

    kinds = {"b": "boolean", "i": "long", "u": "long", "f": "double"}
    columns: list[ColSpec | TensorSpec] = [
        ColSpec(kinds.get(frame[c].dtype.kind, "string"), str(c)) for c in frame.columns
    ]
    texts = frame["raw_text"] if "raw_text" in frame.columns else frame["text"]
    return Dataset(
        name=name, digest=split_digest(texts.astype(str), target_texts(frame[targets])),
        source_type=source_type, source=source,
        schema=json.dumps({"mlflow_colspec": Schema(columns).to_dict()}),
        profile=json.dumps({"num_rows": len(frame), "num_elements": int(frame.size)}),
    )  # fmt: skip
