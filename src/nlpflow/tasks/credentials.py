"""The database password from a Prefect Secret block, for flow runs whose params name a
database source without one (params refuse passwords: nlpflow.config.secrets).

    prefect block create secret   # or: Secret(value="...").save("warehouse-db")
    export NLPFLOW_DB_SECRET=warehouse-db
    nlpflow run --set data.source=postgresql://me@db/shop --set data.query='SELECT ...'

The block is read when an engine is built, inside the task that reads the database, and the
value goes straight into SQLAlchemy's URL object: never into params, logs, artifacts or MLflow.
Without NLPFLOW_DB_SECRET libpq looks the password up itself (PGPASSWORD, ~/.pgpass).
"""

from __future__ import annotations

from typing import Any, cast

from nlpflow.config.settings import load_settings
from nlpflow.data.sources import use_password_source
from nlpflow.errors import DataSourceError


def secret_block_password() -> str | None:
    """The value of the Secret block NLPFLOW_DB_SECRET names; None when it names none."""
    name = load_settings().db_secret
    if not name:
        return None
    from prefect.blocks.system import Secret

    try:
        # called from sync code, so the block itself and not a coroutine (Prefect's dispatch)
        block = cast("Secret[Any]", Secret.load(name))
        value = block.get()
    except ValueError:  # Prefect's answer for a block name it does not have
        raise DataSourceError(
            f"NLPFLOW_DB_SECRET={name}: the Prefect API has no Secret block of that name. "
            f'Create it (Secret(value="...").save("{name}"), or `prefect block create secret`) '
            "or unset NLPFLOW_DB_SECRET to use PGPASSWORD or ~/.pgpass."
        ) from None
    if not isinstance(value, str):
        raise DataSourceError(
            f"the Secret block {name} holds a {type(value).__name__}, not the password: "
            "save the password alone as its value."
        )
    return value


def install() -> None:
    """Every database engine nlpflow builds in this process asks the block for its password
    (read only when an engine is built). Each flow calls this first: no import does it."""
    use_password_source(secret_block_password)
