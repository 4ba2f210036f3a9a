"""Data-parallel transformer training through torchrun (DDP).

`train` calls `launch` when `train.distributed.nproc_per_node` > 1 or `nnodes` > 1. It starts
torchrun with this module as the worker; every process runs the same fine-tuning through the
HF Trainer, which wraps the model in DistributedDataParallel and gives each process its own
shard of every batch. Only global rank 0 writes: checkpoints, the trained model and the report.

    python -m nlpflow.training.distributed SPEC.json     # what torchrun runs in each process

On several nodes, start the same stage on each node with its `train.distributed.node_rank`
(node 0 is `master_addr`); the model is written on node 0.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from nlpflow.config.params import FAMILIES, TrainParams
from nlpflow.errors import ModelError

SPEC, RESULT, SHARDS, MODEL = "spec.json", "result.json", "shards", "model"


def wanted(params: TrainParams) -> bool:
    """True in the launching process when more than one process should train."""
    d = params.distributed
    return (d.nproc_per_node > 1 or d.nnodes > 1) and "LOCAL_RANK" not in os.environ


def launch(
    train: tuple[list[str], list[str]],
    validation: tuple[list[str], list[str]],
    *,
    labels: list[str],
    params: TrainParams,
    workdir: Path,
) -> Any:
    """Train in `nproc_per_node` x `nnodes` processes; return rank 0's model, loaded."""
    from nlpflow.training.families import family_code

    if not FAMILIES[params.family].hf_trainer:
        raise ModelError(
            f"train.distributed runs Hugging Face Trainer families only (transformer, "
            f"token_transformer), not {params.family!r}: "
            "set train.distributed.nproc_per_node=1 and nnodes=1."
        )
    workdir.mkdir(parents=True, exist_ok=True)
    spec = workdir / SPEC
    spec.write_text(json.dumps({
        "train": train, "validation": validation, "labels": labels,
        "params": params.model_dump(mode="json"), "workdir": str(workdir),
    }))  # fmt: skip
    (workdir / RESULT).unlink(missing_ok=True)
    d = params.distributed
    command = [
        sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={d.nproc_per_node}",
        f"--nnodes={d.nnodes}", f"--node_rank={d.node_rank}", f"--master_addr={d.master_addr}",
        f"--master_port={d.master_port}", "-m", "nlpflow.training.distributed", str(spec),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise ModelError(
            f"distributed training failed (torchrun exit {done.returncode}); its last output:\n"
            + "\n".join((done.stderr or done.stdout).splitlines()[-25:])
        )
    if d.node_rank != 0:  # node 0 holds the model; this node's part is done
        return None
    result = json.loads((workdir / RESULT).read_text())
    model = family_code(params.family)[1].load(workdir / MODEL)
    model.history, model.perf, model.device = result["history"], result["perf"], result["device"]
    model.resumed_from = result["resumed_from"]
    return model


def worker(spec_path: Path) -> None:
    """One torchrun process: fine-tune; rank 0 saves the model and the result."""
    from nlpflow.training.families import family_code

    spec = json.loads(spec_path.read_text())
    rank = int(os.environ.get("RANK", "0"))
    workdir = Path(spec["workdir"])
    params = TrainParams.model_validate(spec["params"])
    seen: list[int] = []
    fit = family_code(params.family)[0]  # an HF Trainer family (Family.hf_trainer)
    model: Any = fit(
        tuple(spec["train"]), tuple(spec["validation"]), labels=spec["labels"], params=params,
        workdir=workdir / "checkpoints", record_seen=seen,  # type: ignore[call-arg]
    )  # fmt: skip
    shards = workdir / SHARDS
    shards.mkdir(exist_ok=True)
    (shards / f"rank-{rank}.json").write_text(
        json.dumps({"rank": rank, "examples": seen, "wrote_model": rank == 0})
    )
    if rank == 0:
        model.save(workdir / MODEL)
        (workdir / RESULT).write_text(json.dumps({
            "history": model.history, "perf": model.perf, "device": model.device,
            "resumed_from": model.resumed_from,
            "world_size": int(os.environ.get("WORLD_SIZE", "1")),
        }))  # fmt: skip


if __name__ == "__main__":
    worker(Path(sys.argv[1]))
