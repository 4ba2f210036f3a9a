"""No database password leaks: a whole `nlpflow run` from PostgreSQL, with the password where
nlpflow allows it (PGPASSWORD, ~/.pgpass), writes it into no file of the project or home, and
so into neither MLflow's store nor Prefect's database; a password in params is refused before
anything is written; a Prefect Secret block's password reaches the connection.

.venv/bin/pytest tests/integration/test_no_password_leaks.py -q

Needs PostgreSQL at 127.0.0.1:5432 (database `test`, trust auth: it accepts any password, so
the tests look at what is sent and what is written, not at a login).
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from tests.conftest import PG_URL, REPO, _venv_env, fast_params, make_project

PASSWORD = f"KnownPw-{uuid.uuid4().hex[:12]}"  # unique: a hit is this test's password


@pytest.fixture
def tickets(pg_engine: Any) -> Iterator[str]:
    """The sample tickets as a table of database `test`."""
    import sqlalchemy as sa

    name = f"secret_tickets_{uuid.uuid4().hex[:8]}"
    pd.read_csv(REPO / "data/sample/support_tickets.csv").to_sql(name, pg_engine, index=False)
    yield name
    with pg_engine.begin() as connection:
        connection.execute(sa.text(f'DROP TABLE "{name}"'))


def _files_holding(folder: Path, secret: str) -> list[str]:
    """Every file under `folder` whose bytes hold `secret` (SQLite stores, logs, artifacts)."""
    needle = secret.encode()
    return [
        str(path.relative_to(folder))
        for path in folder.rglob("*")
        if path.is_file() and not path.is_symlink() and needle in path.read_bytes()
    ]


def _clean_env(root: Path, home: Path) -> dict[str, str]:
    """The user's view: this project's own MLflow store and Prefect home, a home of its own."""
    env = _venv_env() | {"NLPFLOW_PROJECT_DIR": str(root), "HOME": str(home)}
    for key in ("PREFECT_HOME", "PREFECT_API_URL", "MLFLOW_TRACKING_URI", "NLPFLOW_TRACKING_URI",
                "NLPFLOW_DB_SECRET", "PGPASSWORD", "PGPASSFILE"):  # fmt: skip
        env.pop(key, None)
    return env


def _project(tmp_path: Path, table: str) -> tuple[Path, Path]:
    tree = yaml.safe_load(fast_params(family="tfidf_logreg"))
    tree["data"].update({"source": PG_URL, "query": f'SELECT text, label FROM "{table}"'})
    tree.setdefault("schedule", {})["skip_unchanged_data"] = False
    home = tmp_path / "home"
    home.mkdir()
    return make_project(tmp_path / "project", yaml.safe_dump(tree, sort_keys=False)), home


@pytest.mark.slow
def test_a_whole_run_writes_the_password_nowhere(tickets: str, tmp_path: Path) -> None:
    import sqlalchemy as sa

    root, home = _project(tmp_path, tickets)
    url = sa.make_url(PG_URL)
    pgpass = home / ".pgpass"
    pgpass.write_text(f"{url.host}:{url.port or 5432}:{url.database}:{url.username}:{PASSWORD}\n")
    pgpass.chmod(0o600)  # libpq ignores a ~/.pgpass others can read
    env = _clean_env(root, home) | {"PGPASSWORD": PASSWORD}

    done = subprocess.run(["nlpflow", "run"], cwd=root, env=env, capture_output=True,
                          text=True, timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert (root / "reports/registration.json").is_file()  # it gathered, trained, registered
    assert PASSWORD not in done.stdout + done.stderr
    # the project holds mlflow.db (params, tags, inputs), mlartifacts/, the Prefect database
    # (.nlpflow/prefect: flow-run parameters, artifacts, events, logs), DVC's cache and reports
    assert (root / "mlflow.db").is_file() and (root / ".nlpflow/prefect").is_dir()
    assert _files_holding(root, PASSWORD) == []
    assert _files_holding(home, PASSWORD) == [".pgpass"]  # the DVC remote lives here too


@pytest.mark.parametrize(
    "command",
    [
        ["run", "--set", "data.source=postgresql://postgres:{pw}@127.0.0.1/test"],
        ["run", "--set", "data.source=postgresql://postgres@127.0.0.1/test?password={pw}"],
        ["infer", "--set", "inference.source=postgresql://postgres:pa/{pw} x@127.0.0.1/test",
         "--set", "inference.table=t", "--set", "inference.output=out"],
    ],
)  # fmt: skip
def test_a_password_in_params_is_refused_and_written_nowhere(
    tmp_path: Path, command: list[str]
) -> None:
    root, home = tmp_path / "project", tmp_path / "home"
    for folder in (root, home):
        folder.mkdir()
    (root / "params.yaml").write_text((REPO / "params.yaml").read_text())
    argv = ["nlpflow", *(part.format(pw=PASSWORD) for part in command)]
    done = subprocess.run(argv, cwd=root, env=_clean_env(root, home), capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    said = done.stdout + done.stderr
    assert done.returncode == 2, said
    assert "holds " in said and "put it in PGPASSWORD, in ~/.pgpass, or in a Prefect " in said
    assert PASSWORD not in said and "Traceback" not in said
    assert _files_holding(root, PASSWORD) == [] and _files_holding(home, PASSWORD) == []


def test_a_secret_block_password_reaches_the_connection(
    prefect_api: str, tickets: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlalchemy as sa
    from prefect import flow, task
    from prefect.blocks.system import Secret

    from nlpflow.data.sources import read_sql
    from nlpflow.tasks import credentials

    block = f"nlpflow-db-{uuid.uuid4().hex[:8]}"
    Secret(value=PASSWORD).save(block)  # type: ignore[arg-type]  # Prefect wraps a str itself
    monkeypatch.setenv("NLPFLOW_DB_SECRET", block)
    sent: list[str | None] = []

    def connecting(dialect: Any, record: Any, cargs: Any, cparams: dict[str, Any]) -> None:
        sent.append(cparams.get("password"))

    @task
    def gather_rows() -> int:
        frame, _ = read_sql(PG_URL, query=f'SELECT * FROM "{tickets}"', timestamp_column=None,
                            cutoff=None)  # fmt: skip
        return len(frame)

    @flow
    def reads() -> int:
        credentials.install()  # as nlpflow's flows do first
        return gather_rows()

    sa.event.listen(sa.engine.Engine, "do_connect", connecting)
    try:
        assert reads() == len(pd.read_csv(REPO / "data/sample/support_tickets.csv"))
    finally:
        sa.event.remove(sa.engine.Engine, "do_connect", connecting)
    assert sent == [PASSWORD]

    monkeypatch.setenv("NLPFLOW_DB_SECRET", "no-such-block")
    with pytest.raises(Exception, match="NLPFLOW_DB_SECRET=no-such-block: the Prefect API has no"):
        reads()
    assert os.environ.get("PGPASSWORD") is None  # it never went through the environment
