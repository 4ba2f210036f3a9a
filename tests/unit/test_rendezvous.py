"""Multi-node training's settings and params: where nodes meet is the environment's, what the
model is made of stays in params; torchrun's arguments from them; refusals that say the fix.

    .venv/bin/python -m pytest tests/unit/test_rendezvous.py -q
"""

from __future__ import annotations

from pathlib import Path

import pytest

from nlpflow.config.params import DistributedParams, TrainParams, load_params
from nlpflow.config.settings import load_settings
from nlpflow.errors import ModelError, ParamsError
from nlpflow.training.distributed import JOBS, SPEC, Rendezvous, launch
from nlpflow.training.train import training_key

SETTINGS = ("NLPFLOW_RDZV_ENDPOINT", "NLPFLOW_RDZV_ID", "NLPFLOW_RDZV_TIMEOUT",
            "NLPFLOW_CHECKPOINT_DIR", "MASTER_ADDR", "MASTER_PORT")  # fmt: skip


@pytest.fixture(autouse=True)
def _no_rendezvous_from_outside(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NLPFLOW_PROJECT_DIR", str(tmp_path))


def test_rendezvous_defaults_the_project_checkpoints_and_no_endpoint(tmp_path: Path) -> None:
    settings = load_settings()
    assert settings.resolved_rdzv_endpoint is None
    assert (settings.rdzv_id, settings.rdzv_timeout) == ("nlpflow", 900.0)
    default = tmp_path / ".nlpflow" / "checkpoints"
    assert settings.resolved_checkpoint_dir(default) == default


def test_settings_name_the_endpoint_the_job_and_a_shared_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("NLPFLOW_RDZV_ENDPOINT", "10.0.0.1:29400")
    monkeypatch.setenv("NLPFLOW_RDZV_ID", "support-tickets-7")
    monkeypatch.setenv("NLPFLOW_CHECKPOINT_DIR", "shared/ckpt")  # relative: under the project
    monkeypatch.setenv("MASTER_ADDR", "elsewhere")  # ours wins over a PyTorchJob's
    monkeypatch.setenv("MASTER_PORT", "23456")
    settings = load_settings()
    assert settings.resolved_rdzv_endpoint == "10.0.0.1:29400"
    shared = settings.resolved_checkpoint_dir(tmp_path / "unused")
    assert shared == tmp_path / "shared" / "ckpt"
    rendezvous = Rendezvous.from_settings(settings, shared=shared)
    assert rendezvous.job_file == tmp_path / "shared" / "ckpt" / JOBS / "support-tickets-7.json"


def test_a_pytorchjob_pod_meets_at_its_master_without_nlpflow_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the Kubeflow training operator sets MASTER_ADDR and MASTER_PORT in every replica
    monkeypatch.setenv("MASTER_ADDR", "nlpflow-train-master-0")
    monkeypatch.setenv("MASTER_PORT", "29400")
    assert load_settings().resolved_rdzv_endpoint == "nlpflow-train-master-0:29400"


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("NLPFLOW_RDZV_ENDPOINT", "10.0.0.1", "is not host:port"),
        ("NLPFLOW_RDZV_ENDPOINT", "10.0.0.1:99999", "is not host:port"),
        ("NLPFLOW_RDZV_ID", "two words", "NLPFLOW_RDZV_ID"),
        ("NLPFLOW_RDZV_TIMEOUT", "0", "greater than 0"),
    ],
)
def test_a_wrong_setting_is_a_params_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, says: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ParamsError, match=name) as raised:
        load_settings()
    assert says in str(raised.value)


def test_the_lead_hosts_the_rendezvous_and_the_others_run_the_same_arguments() -> None:
    rendezvous = Rendezvous("10.0.0.1:29400", "job-1", Path("/shared"), timeout=120)
    lead, other = rendezvous.torchrun_args(lead=True), rendezvous.torchrun_args(lead=False)
    assert lead == [
        "--rdzv-backend=c10d", "--rdzv-endpoint=10.0.0.1:29400", "--rdzv-id=job-1",
        "--rdzv-conf=join_timeout=120,read_timeout=120,is_host=1",
    ]  # fmt: skip
    assert other == [*lead[:-1], lead[-1].replace("is_host=1", "is_host=0")]


def test_no_endpoint_is_a_model_error_that_says_which_variable() -> None:
    with pytest.raises(ModelError, match=r"set NLPFLOW_RDZV_ENDPOINT to host:port of the lead"):
        Rendezvous(None, "nlpflow", Path("/shared")).torchrun_args(lead=False)


def test_node_rank_and_master_address_in_params_say_they_are_settings_now(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  distributed:\n    nnodes: 2\n    master_port: 29500\n")
    moved = r"train.distributed.master_port moved to the environment"
    with pytest.raises(ParamsError, match=moved) as raised:
        load_params(path)
    assert "NLPFLOW_RDZV_ENDPOINT=host:port" in str(raised.value)
    with pytest.raises(ParamsError, match="no node rank: nodes join the c10d rendezvous"):
        load_params(path, ["train.distributed.node_rank=1"])


def test_the_world_size_is_in_the_training_key_where_nodes_meet_is_not(tmp_path: Path) -> None:
    """Checkpoints are found by training key. Had the port or a node's rank stayed a param, a
    rerun on another port (or each node, with its own rank) would look for them in a folder of
    its own and start afresh; a different world size is a different training."""
    import pandas as pd

    for split in ("train", "validation"):
        pd.DataFrame({"text": ["a b", "c d"], "label": ["x", "y"]}).to_parquet(
            tmp_path / f"{split}.parquet"
        )
    assert set(DistributedParams.model_fields) == {"nproc_per_node", "nnodes", "backend"}
    two = TrainParams(distributed=DistributedParams(nnodes=2))
    four = TrainParams(distributed=DistributedParams(nnodes=2, nproc_per_node=2))
    assert training_key(tmp_path, two, ["x", "y"]) != training_key(tmp_path, four, ["x", "y"])


def test_a_lead_whose_checkpoints_are_not_in_the_shared_folder_is_refused(tmp_path: Path) -> None:
    params = TrainParams(family="transformer", distributed=DistributedParams(nnodes=2))
    rendezvous = Rendezvous("127.0.0.1:29400", "nlpflow", tmp_path / "shared")
    with pytest.raises(ModelError, match="set NLPFLOW_CHECKPOINT_DIR to a folder all nodes mount"):
        launch((["a"], ["x"]), (["b"], ["x"]), labels=["x"], params=params,
               workdir=tmp_path / "local", rendezvous=rendezvous)  # fmt: skip
    assert not (tmp_path / "shared" / JOBS).exists()  # nobody is told to join
    assert (tmp_path / "local" / SPEC).is_file()
