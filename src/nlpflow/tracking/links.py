"""Web addresses of a run's pages: the MLflow run and the Prefect flow run.

    run_page_url("http://mlflow:5000", "1", run_id)   # the page, whether or not it answers now
    mlflow_run_url(uri, "1", run_id)                  # only when the server answers now

A local store (SQLite, a folder) and Prefect's temporary server have no address after the run:
`nlpflow ui` serves both for the project.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request

from nlpflow.config.settings import profile_api_url

TIMEOUT_SECONDS = 2.0  # a summary must not wait on a server that is away
# MLflow 3's UI opens an experiment in GenAI mode (a traces dashboard) unless the experiment
# says it trains models, or the address asks for it: the browser remembers the last mode, and
# only `workflowType` in the address overrides it. The runs table shows no metric column on a
# first visit; a view saved on the experiment (tag mlflow.sharedViewState.<key>) and named in
# the address does.
EXPERIMENT_KIND, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"
VIEW_KEY = "nlpflow-runs"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"


def experiment_tags(main_metric: str) -> dict[str, str]:
    """The experiment's kind, and the runs-table view nlpflow's links open: each run's name
    wide enough to read, the main test metric, accuracy, the data and the model."""
    metrics = list(dict.fromkeys([f"test/{main_metric}", "test/accuracy"]))
    columns = [f"metrics.`{m}`" for m in metrics] + ["attributes.`Dataset`", "attributes.`Models`"]
    view = {
        "selectedColumns": columns,
        "columnOrder": ["attributes.`Run Name`", *columns],
        "columnWidths": {"attributes.`Run Name`": 360},  # names are cut at the column's edge
    }
    return {EXPERIMENT_KIND: MODEL_TRAINING, VIEW_TAG: json.dumps(view)}


def _experiment_url(tracking_uri: str, experiment_id: str | None) -> str | None:
    """The experiment's address on a tracking server; None for a local store."""
    if not tracking_uri.startswith(("http://", "https://")) or experiment_id is None:
        return None
    return f"{tracking_uri.rstrip('/')}/#/experiments/{experiment_id}"


def experiment_page_url(tracking_uri: str, experiment_id: str | None) -> str | None:
    """The experiment's runs table in model-training mode with nlpflow's view of it."""
    base = _experiment_url(tracking_uri, experiment_id)
    if base is None:
        return None
    return f"{base}/runs?workflowType=machine_learning&viewStateShareKey={VIEW_KEY}"


def run_page_url(tracking_uri: str, experiment_id: str | None, run_id: str) -> str | None:
    base = _experiment_url(tracking_uri, experiment_id)
    return None if base is None else f"{base}/runs/{run_id}"


def answers(url: str) -> bool:
    """Whether a GET of `url` gets any HTTP answer within TIMEOUT_SECONDS."""
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS):
            return True
    except urllib.error.HTTPError:
        return True  # it answered (401 behind auth, say): the page exists
    except (OSError, ValueError):
        return False


def mlflow_run_url(tracking_uri: str, experiment_id: str | None, run_id: str) -> str | None:
    page = run_page_url(tracking_uri, experiment_id, run_id)
    if page is None or not answers(f"{tracking_uri.rstrip('/')}/health"):
        return None
    return page


def _prefect_api_url() -> str | None:
    """PREFECT_API_URL, exported or in the active Prefect profile."""
    return os.environ.get("PREFECT_API_URL") or profile_api_url()


def prefect_ui_url(api: str | None = None) -> str | None:
    """PREFECT_UI_URL, else the API URL (`api`, else looked up) without /api."""
    ui = os.environ.get("PREFECT_UI_URL")
    if ui:
        return ui.rstrip("/")
    api = api or _prefect_api_url()
    return api.rstrip("/").removesuffix("/api") if api else None


def prefect_flow_run_url(flow_run_id: str | None) -> str | None:
    """The flow run's page when a Prefect server is configured and answers."""
    api = _prefect_api_url()
    ui = prefect_ui_url(api)
    if ui is None or api is None or flow_run_id is None:
        return None
    if not answers(f"{api.rstrip('/')}/health"):
        return None
    return f"{ui}/runs/flow-run/{flow_run_id}"
