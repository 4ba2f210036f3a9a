"""How a training flow run reads in Prefect's UI: its name says what it trains (the same as its
MLflow run's), its tags say which project, family and data, and links lead to the MLflow run.

    @flow(flow_run_name=flow_run_name)   # "transformer · support_tickets · lr 0.0001 · seed 13"
"""

from __future__ import annotations

from pathlib import Path

from nlpflow.config.naming import dataset_name, run_name
from nlpflow.config.params import Params, load_params
from nlpflow.config.settings import load_settings
from nlpflow.errors import NlpflowError


def flow_run_name() -> str:
    """The run's name from the parameters it was called with (Prefect calls this as the run
    starts). Invalid params keep Prefect's own name: the flow then fails saying why."""
    from prefect.runtime import flow_run

    parameters = flow_run.parameters
    root = Path(parameters.get("project_dir") or load_settings().root)
    configs = [Path(c) for c in parameters.get("configs") or []]
    try:
        params = load_params(root / "params.yaml", parameters.get("overrides"), configs)
    except NlpflowError:
        return str(flow_run.name)
    return run_name(params)


def run_tags(root: Path, params: Params) -> list[str]:
    """project:<folder>, family:<train.family>, data:<dataset>."""
    return [
        f"project:{root.name}",
        f"family:{params.train.family}",
        f"data:{dataset_name(params.data.source)}",
    ]


def tag_flow_run(root: Path, params: Params) -> None:
    """Add the run's tags to the running flow run (kept: tags a deployment or caller gave)."""
    from prefect.client.orchestration import get_client
    from prefect.runtime import flow_run

    with get_client(sync_client=True) as client:
        current = client.read_flow_run(flow_run.id)
        tags = list(dict.fromkeys([*current.tags, *run_tags(root, params)]))
        client.update_flow_run(flow_run.id, tags=tags)


def show_library_progress() -> None:
    """nlpflow's INFO lines (training progress) reach the flow run's log. The CLI and
    `nlpflow worker` export PREFECT_LOGGING_EXTRA_LOGGERS=nlpflow, so Prefect attaches its API
    handler to the `nlpflow` logger, but leaves its level to the root's WARNING; a flow run
    started by a plain `prefect worker` has no handler there: it gets one here."""
    from prefect.logging.handlers import APILogHandler

    from nlpflow.training.progress import show_info_lines

    library = show_info_lines()
    if not any(isinstance(h, APILogHandler) for h in library.handlers):
        library.addHandler(APILogHandler())
