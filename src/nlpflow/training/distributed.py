"""Data-parallel transformer training through torchrun (DDP), on one machine or several.

`train` calls `launch` when `train.distributed.nproc_per_node` > 1 or `nnodes` > 1. It starts
torchrun with this module as the worker; every process runs the same fine-tuning through the
HF Trainer, which wraps the model in DistributedDataParallel and gives each process its own
shard of every batch. Only global rank 0 writes: checkpoints, the trained model and the result.

Several machines (`nnodes` > 1): the machine running the train stage leads. It writes the
training's spec (texts, labels, params) into the shared checkpoint folder, announces it in a
job file there (`<NLPFLOW_CHECKPOINT_DIR>/jobs/<NLPFLOW_RDZV_ID>.json`) and hosts torchrun's c10d
rendezvous at NLPFLOW_RDZV_ENDPOINT. Every other machine runs `nlpflow train-node` (`join`):
it waits for the job file and starts the same torchrun command; its processes read the lead's
spec once the rendezvous is complete, so every node trains on the lead's data and params, and
the nodes need nothing but nlpflow and the shared folder. The lead loads the model global
rank 0 wrote there and logs it, whichever machine rank 0 ran on (c10d numbers nodes in its
own order).

    python -m nlpflow.training.distributed SPEC.json|JOB.json   # what torchrun runs per process
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nlpflow.config.params import FAMILIES, TrainParams
from nlpflow.errors import ModelError

if TYPE_CHECKING:
    from nlpflow.config.settings import Settings

SPEC, RESULT, SHARDS, MODEL, JOBS = "spec.json", "result.json", "shards", "model", "jobs"


@dataclass(frozen=True)
class Rendezvous:
    """Where the machines of a multi-node training meet: settings, never params (the same
    model trains wherever it trains). nlpflow.config.settings documents each variable."""

    endpoint: str | None  # host:port of the lead node, which hosts the c10d store
    job: str  # torchrun's rendezvous id; also names the job file
    shared: Path  # the checkpoint folder every node mounts at the same path
    timeout: float = 900.0  # seconds to wait for the other nodes

    @classmethod
    def from_settings(cls, settings: Settings, *, shared: Path) -> Rendezvous:
        return cls(settings.resolved_rdzv_endpoint, settings.rdzv_id, shared,
                   settings.rdzv_timeout)  # fmt: skip

    @property
    def job_file(self) -> Path:
        return self.shared / JOBS / f"{self.job}.json"

    def torchrun_args(self, *, lead: bool) -> list[str]:
        """c10d rendezvous arguments. The lead hosts the store (is_host: no guessing from
        host names, which fails behind DNS aliases); read_timeout is also how long a node
        started before the lead keeps trying to reach it."""
        if not self.endpoint:
            raise ModelError(
                "train.distributed.nnodes > 1 needs a rendezvous: set NLPFLOW_RDZV_ENDPOINT to "
                "host:port of the lead node (the one running the train stage), reachable from "
                "every other node, on every node (e.g. NLPFLOW_RDZV_ENDPOINT=10.0.0.1:29400)."
            )
        seconds = max(1, round(self.timeout))
        conf = f"join_timeout={seconds},read_timeout={seconds},is_host={int(lead)}"
        return ["--rdzv-backend=c10d", f"--rdzv-endpoint={self.endpoint}",
                f"--rdzv-id={self.job}", f"--rdzv-conf={conf}"]  # fmt: skip


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
    rendezvous: Rendezvous | None = None,
) -> Any:
    """Train in `nproc_per_node` x `nnodes` processes; return global rank 0's model, loaded.
    With `nnodes` > 1, `workdir` must lie in `rendezvous.shared`: this node leads."""
    from nlpflow.training.families import family_code

    if not FAMILIES[params.family].hf_trainer:
        raise ModelError(
            f"train.distributed runs Hugging Face Trainer families only (transformer, "
            f"token_transformer), not {params.family!r}: "
            "set train.distributed.nproc_per_node=1 and nnodes=1."
        )
    d = params.distributed
    workdir.mkdir(parents=True, exist_ok=True)
    spec = {"train": train, "validation": validation, "labels": labels,
            "params": params.model_dump(mode="json")}  # fmt: skip
    _write_json(workdir / SPEC, spec)
    (workdir / RESULT).unlink(missing_ok=True)
    if d.nnodes == 1:  # torchrun picks a free port itself
        done = _torchrun(d.nnodes, d.nproc_per_node, ["--standalone"], workdir / SPEC)
    else:
        rdzv = _lead_rendezvous(rendezvous, workdir)
        _write_json(rdzv.job_file, {
            "workdir": str(workdir.resolve().relative_to(rdzv.shared.resolve())),
            "nnodes": d.nnodes, "nproc_per_node": d.nproc_per_node,
        })  # fmt: skip
        try:
            done = _torchrun(d.nnodes, d.nproc_per_node, rdzv.torchrun_args(lead=True),
                             rdzv.job_file)  # fmt: skip
        finally:  # a node started later must not join a training that is over
            rdzv.job_file.unlink(missing_ok=True)
    _check(done, "distributed training", rendezvous=rendezvous, nodes=d.nnodes)
    result = json.loads((workdir / RESULT).read_text())
    model = family_code(params.family)[1].load(workdir / MODEL)
    model.history, model.perf, model.device = result["history"], result["perf"], result["device"]
    model.resumed_from = result["resumed_from"]
    return model


def join(rendezvous: Rendezvous, *, say: Callable[[str], None] = print) -> dict[str, Any]:
    """This machine's processes for the multi-node training the lead announces in the shared
    folder (`nlpflow train-node`): wait for its job file, run the same torchrun command, return
    the job. Nothing is written here but the processes' shard records and rank 0's files."""
    args = rendezvous.torchrun_args(lead=False)  # no endpoint: say so before any wait
    job_file = rendezvous.job_file
    deadline = time.monotonic() + rendezvous.timeout
    if not job_file.exists():
        say(f"waiting for the lead node's training ({job_file})")
    while not job_file.exists():
        if time.monotonic() > deadline:
            raise ModelError(
                f"no lead node announced training job {rendezvous.job!r} in "
                f"{rendezvous.shared} within {rendezvous.timeout:.0f} s: start the pipeline "
                "(its train stage, train.distributed.nnodes > 1) on the lead node with the same "
                "NLPFLOW_CHECKPOINT_DIR (a folder both nodes mount) and NLPFLOW_RDZV_ID."
            )
        time.sleep(1.0)
    job = json.loads(job_file.read_text())
    say(f"joining {job['nnodes']} nodes x {job['nproc_per_node']} processes at "
        f"{rendezvous.endpoint}, job {rendezvous.job}")  # fmt: skip
    done = _torchrun(job["nnodes"], job["nproc_per_node"], args, job_file)
    _check(done, "this node's training", rendezvous=rendezvous, nodes=job["nnodes"])
    return dict(job)


def _lead_rendezvous(rendezvous: Rendezvous | None, workdir: Path) -> Rendezvous:
    if rendezvous is None or not workdir.resolve().is_relative_to(rendezvous.shared.resolve()):
        raise ModelError(
            "train.distributed.nnodes > 1 keeps its checkpoints where every node reads them: "
            "set NLPFLOW_CHECKPOINT_DIR to a folder all nodes mount at the same path "
            "(NFS, a ReadWriteMany volume) and run the train stage there."
        )
    return rendezvous


def _torchrun(nnodes: int, nproc: int, where: list[str], target: Path) -> Any:
    command = [
        sys.executable, "-m", "torch.distributed.run", f"--nnodes={nnodes}",
        f"--nproc-per-node={nproc}", *where, "--max-restarts=0",
        "-m", "nlpflow.training.distributed", str(target),
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = process.communicate()
    except BaseException:  # a stop signal, Ctrl-C: not subprocess.run's SIGKILL, which would
        # leave torchrun's processes (each in a session of its own) training on as orphans.
        # On SIGTERM torchrun stops them itself (SIGKILL after 30 s), even when this process
        # exits first (nlpflow.shutdown's grace period)
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=30)
        raise
    return subprocess.CompletedProcess(command, process.returncode, out, err)


def _check(done: Any, what: str, *, rendezvous: Rendezvous | None = None, nodes: int = 1) -> None:
    if done.returncode == 0:
        return
    output = done.stderr or done.stdout
    hint = ""
    if rendezvous is not None and "RendezvousTimeoutError" in output:
        hint = (f" Not all {nodes} nodes joined within NLPFLOW_RDZV_TIMEOUT "
                f"({rendezvous.timeout:.0f} s): run `nlpflow train-node` on the other machines "
                f"with the same NLPFLOW_RDZV_ENDPOINT ({rendezvous.endpoint}, the lead's address, "
                f"reachable from them), NLPFLOW_RDZV_ID ({rendezvous.job}) and "
                "NLPFLOW_CHECKPOINT_DIR (a folder every node mounts).")  # fmt: skip
    elif rendezvous is not None and "RendezvousConnectionError" in output:
        hint = (f" The lead's rendezvous at {rendezvous.endpoint} did not answer within "
                "NLPFLOW_RDZV_TIMEOUT: is NLPFLOW_RDZV_ENDPOINT the lead's address and port, "
                "reachable from here, and is the lead's train stage running?")  # fmt: skip
    elif nodes > 1:  # the usual cause: a node lost; the checkpoints are the shared ones
        hint = (" If a node was lost (killed, rebooted, unreachable), start the train stage "
                "again on the lead and `nlpflow train-node` on the others: training resumes "
                "from the last checkpoint in NLPFLOW_CHECKPOINT_DIR.")  # fmt: skip
    raise ModelError(
        f"{what} failed (torchrun exit {done.returncode}).{hint} torchrun's last output:\n"
        + "\n".join(output.splitlines()[-30:])
    )


def _write_json(path: Path, data: Any) -> None:
    """Whole or not at all: another node may read it at any moment."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(json.dumps(data))
    os.replace(partial, path)


def _spec_of(path: Path) -> tuple[dict[str, Any], Path]:
    """The spec and workdir a torchrun process was pointed at: a spec, or a job file naming
    the lead's workdir (read now, after the rendezvous: the lead wrote it before joining)."""
    data = json.loads(path.read_text())
    if "train" in data:
        return data, path.parent
    workdir = path.parent.parent / data["workdir"]  # jobs/ sits in the shared folder
    return json.loads((workdir / SPEC).read_text()), workdir


def worker(path: Path) -> None:
    """One torchrun process: fine-tune; rank 0 saves the model and the result."""
    from nlpflow.training.families import family_code

    spec, workdir = _spec_of(path)
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    params = TrainParams.model_validate(spec["params"])
    d = params.distributed
    if world != d.nnodes * d.nproc_per_node:  # a node started for another job's shape
        raise ModelError(f"{world} processes joined, the lead's params ask for "
                         f"{d.nnodes} nodes x {d.nproc_per_node}")  # fmt: skip
    seen: list[int] = []
    fit = family_code(params.family)[0]  # an HF Trainer family (Family.hf_trainer)
    model: Any = fit(
        tuple(spec["train"]), tuple(spec["validation"]), labels=spec["labels"], params=params,
        workdir=workdir / "checkpoints", record_seen=seen,  # type: ignore[call-arg]
    )  # fmt: skip
    shards = workdir / SHARDS
    shards.mkdir(exist_ok=True)
    (shards / f"rank-{rank}.json").write_text(json.dumps({
        "rank": rank, "examples": seen, "wrote_model": rank == 0,
        "node": os.environ.get("GROUP_RANK", "0"), "resumed_from": model.resumed_from,
    }))  # fmt: skip
    if rank == 0:
        model.save(workdir / MODEL)
        _write_json(workdir / RESULT, {
            "history": model.history, "perf": model.perf, "device": model.device,
            "resumed_from": model.resumed_from, "world_size": world,
        })  # fmt: skip


if __name__ == "__main__":
    from torch.distributed.elastic.multiprocessing.errors import record

    # the failure's exception and traceback into torchrun's summary, the end of its output
    record(worker)(Path(sys.argv[1]))
