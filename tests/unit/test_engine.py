"""NLPFLOW_ENGINE / NLPFLOW_WORKERS: each form parse_engine reads, the messages of wrong ones,
the settings that carry them, and where a sweep's trials run for each sweep.runner (which
address wins, how many workers a local cluster gets). No cluster is started here
(tests/flows/test_sweep_engines.py runs sweeps on real ones).

    .venv/bin/python -m pytest tests/unit/test_engine.py -q
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from nlpflow.config.engine import Engine, parse_engine
from nlpflow.config.params import parse_params
from nlpflow.config.settings import Settings, load_settings
from nlpflow.errors import ParamsError


@pytest.fixture(autouse=True)
def _no_engine_from_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NLPFLOW_ENGINE", "NLPFLOW_WORKERS", "NLPFLOW_SWEEP_ADDRESS"):
        monkeypatch.delenv(name, raising=False)


FORMS = "give local, processes, dask, dask://scheduler-host:8786, ray or ray://head-host:10001"


@pytest.mark.parametrize(
    ("text", "kind", "address"),
    [
        ("local", "local", None),
        ("", "local", None),  # unset or empty: this process
        ("processes", "processes", None),
        ("dask", "dask", None),
        ("dask://scheduler:8786", "dask", "tcp://scheduler:8786"),  # Dask speaks tcp://
        ("ray", "ray", None),
        ("ray://head:10001", "ray", "ray://head:10001"),  # the Ray client's own scheme
        ("  DASK://10.0.0.5:8786 ", "dask", "tcp://10.0.0.5:8786"),  # as typed in a .env
    ],
)
def test_each_form_of_the_engine_setting(text: str, kind: str, address: str | None) -> None:
    engine = parse_engine(text, workers=3)
    assert (engine.kind, engine.address, engine.workers) == (kind, address, 3)


def test_workers_default_to_the_cores_this_process_may_use() -> None:
    import os

    assert parse_engine("processes").workers == len(os.sched_getaffinity(0))


@pytest.mark.parametrize(
    "text", ["bogus", "spark://host:7077", "processes://host:1", "local://x", "dask://", "ray:/h"]
)
def test_a_wrong_engine_names_the_variable_and_every_form(text: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_engine(text, workers=1)
    assert str(caught.value) == f"NLPFLOW_ENGINE={text.strip()!r} is not an engine: {FORMS}"


def test_load_settings_refuses_a_wrong_engine_with_a_params_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NLPFLOW_ENGINE", "bogus")
    with pytest.raises(ParamsError) as caught:
        load_settings()
    # the variable named once, then what it takes
    assert str(caught.value) == (
        f"[NLP001] environment settings are wrong: NLPFLOW_ENGINE='bogus' is not an engine: {FORMS}"
    )


def test_load_settings_refuses_zero_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NLPFLOW_WORKERS", "0")
    with pytest.raises(ParamsError, match="NLPFLOW_WORKERS: Input should be greater than"):
        load_settings()


def test_settings_resolve_the_engine_with_the_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NLPFLOW_ENGINE", "dask://scheduler:8786")
    monkeypatch.setenv("NLPFLOW_WORKERS", "3")
    assert load_settings().resolved_engine == Engine("dask", "tcp://scheduler:8786", 3)
    monkeypatch.delenv("NLPFLOW_ENGINE")
    assert load_settings().resolved_engine.kind == "local"  # the default


def _trial_engine(runner: str, **env: str) -> Engine | None:
    from nlpflow.tasks.sweep import trial_engine

    sweep = parse_params({"sweep": {"runner": runner, "parallelism": 3}}).sweep
    return trial_engine(sweep, Settings(**env))  # type: ignore[arg-type]


def test_runner_engine_runs_trials_where_nlpflow_engine_says() -> None:
    assert _trial_engine("engine", engine="ray://head:10001") == Engine(
        "ray", "ray://head:10001", 3
    )
    # a local cluster gets sweep.parallelism workers: that many trials are in flight
    assert _trial_engine("engine", engine="dask", workers=5) == Engine("dask", None, 3)


def test_the_local_engine_trains_one_trial_at_a_time() -> None:
    from nlpflow.tasks.sweep import trial_slots

    sweep = parse_params({"sweep": {"runner": "engine", "parallelism": 3}}).sweep
    local = _trial_engine("engine")
    assert local is not None and local.kind == "local"
    assert trial_slots(sweep, local) == 1
    assert trial_slots(sweep, _trial_engine("processes")) == 3


def test_threads_and_processes_ignore_the_engine_setting() -> None:
    assert _trial_engine("threads", engine="dask://scheduler:8786") is None
    assert _trial_engine("processes", engine="ray") == Engine("processes", None, 3)


@pytest.mark.parametrize(
    ("runner", "env", "expected"),
    [
        # NLPFLOW_ENGINE's address wins over the older NLPFLOW_SWEEP_ADDRESS ...
        ("dask", {"engine": "dask://a:8786", "sweep_address": "tcp://b:8786"}, "tcp://a:8786"),
        ("ray", {"engine": "ray://a:10001", "sweep_address": "ray://b:10001"}, "ray://a:10001"),
        # ... when it names this runner's engine; the older setting keeps working as given
        ("dask", {"engine": "ray://a:10001", "sweep_address": "tcp://b:8786"}, "tcp://b:8786"),
        ("ray", {"engine": "processes", "sweep_address": "auto"}, "auto"),
        ("dask", {"engine": "dask", "sweep_address": "b:8786"}, "b:8786"),
        # neither: a local cluster of sweep.parallelism workers
        ("dask", {"engine": "dask"}, None),
        ("ray", {}, None),
    ],
)
def test_dask_and_ray_runners_find_their_cluster(
    runner: str, env: dict[str, str], expected: str | None
) -> None:
    assert _trial_engine(runner, **env) == Engine(runner, expected, 3)  # type: ignore[arg-type]


def test_a_local_dask_cluster_has_parallelism_single_threaded_worker_processes() -> None:
    from nlpflow.tasks.engine import engine_task_runner

    runner = engine_task_runner(Engine("dask", None, 8), workers=3)  # nothing starts yet
    assert runner.cluster_kwargs == {"n_workers": 3, "threads_per_worker": 1, "processes": True}
    at = engine_task_runner(Engine("dask", "tcp://scheduler:8786", 8), workers=3)
    assert at.address == "tcp://scheduler:8786" and not at.cluster_kwargs


def test_a_local_ray_is_a_new_instance_never_one_found_on_the_machine() -> None:
    from nlpflow.tasks.engine import engine_task_runner

    # ray.init() without an address joins the Ray this machine started last
    runner = engine_task_runner(Engine("ray", None, 8), workers=2)
    assert runner.init_kwargs["address"] == "local" and runner.init_kwargs["num_cpus"] == 2
    assert engine_task_runner(Engine("ray", "ray://h:10001", 8)).address == "ray://h:10001"


def test_a_missing_extra_is_named_before_any_run_opens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "prefect_ray", None)  # as if prefect-ray were absent
    with pytest.raises(ParamsError) as caught:
        _trial_engine("engine", engine="ray://head:10001")
    assert 'engine ray needs prefect-ray, which is not installed: pip install "nlpflow[ray]"' in (
        str(caught.value)
    )


def test_sweep_runner_takes_engine_and_names_the_choices() -> None:
    assert parse_params({"sweep": {"runner": "engine"}}).sweep.runner == "engine"
    with pytest.raises(ParamsError, match="'threads', 'processes', 'engine', 'dask' or 'ray'"):
        parse_params({"sweep": {"runner": "spark"}})


def test_dashboard_lines() -> None:
    from nlpflow.tasks.engine import dashboard_line, dashboard_url, thread_task_runner

    dask = Engine("dask", "tcp://s:8786", 1)
    assert dashboard_line(dask, "http://s:8787/status") == "Dask dashboard: http://s:8787/status"
    ray = Engine("ray", None, 1)
    assert dashboard_line(ray, None) == "Ray dashboard: none (the cluster names none)"
    assert dashboard_url(thread_task_runner(1)) is None


@pytest.mark.subprocess  # `nlpflow` in a child process
def test_cli_names_a_wrong_engine_in_one_line(tmp_path: Path, venv_env: dict[str, str]) -> None:
    import subprocess

    # load_settings ran before the CLI's error handling: this was a traceback
    done = subprocess.run(
        ["nlpflow", "params"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env=venv_env | {"NLPFLOW_PROJECT_DIR": str(tmp_path), "NLPFLOW_ENGINE": "spark://m:7077"},
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "NLPFLOW_ENGINE='spark://m:7077' is not an engine" in " ".join(done.stderr.split())
    assert "Traceback" not in done.stderr
