"""The sources gather reads from, dispatched on their kind (nlpflow.config.source_kinds) in
`fetch_source` and `source_fingerprint`: http(s) downloads with a sha256 pin and a local cache,
SQL queries through SQLAlchemy with a reproducible timestamp cut-off, and Hugging Face
`datasets` ids (`hf:<id>`) snapshotted to Parquet.

A download goes to `<cache>/<sha256 of the URL>/<file name>`. With a pin, a cached file that
matches is used without touching the network; a download that does not match is an error (the
server's file changed). Server failures (5xx, timeouts) raise SourceUnavailableError, which the
Prefect gather task retries with backoff; 4xx answers are the user's to fix and are not retried.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

from nlpflow.config.params import DataParams

# The kinds of source (one dispatch, nlpflow.config.source_kinds), importable from here too.
from nlpflow.config.source_kinds import DATABASE_SCHEMES as DATABASE_SCHEMES
from nlpflow.config.source_kinds import HF_PREFIX, is_glob, source_kind
from nlpflow.config.source_kinds import dvc_can_track as dvc_can_track
from nlpflow.config.source_kinds import is_database_url as is_database_url
from nlpflow.config.source_kinds import is_hf as is_hf
from nlpflow.config.source_kinds import is_url as is_url
from nlpflow.errors import DataSourceError, SourceUnavailableError

TIMEOUT_S = 60


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_http(url: str, *, cache: Path, sha256: str | None = None) -> Path:
    """The local copy of `url`, downloaded unless a pinned copy is already cached."""
    name = PurePosixPath(urlparse(url).path).name or "download"
    target = cache / hashlib.sha256(url.encode()).hexdigest()[:16] / name
    if sha256 is not None and target.exists() and _digest(target) == sha256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(dir=target.parent, prefix=".partial-")
    try:
        with (
            os.fdopen(handle, "wb") as out,
            urllib.request.urlopen(url, timeout=TIMEOUT_S) as answer,
        ):
            for block in iter(lambda: answer.read(1 << 20), b""):
                out.write(block)
        got = _digest(Path(partial))
        if sha256 is not None and got != sha256:
            raise DataSourceError(
                f"{url} has sha256 {got}, but data.sha256 pins {sha256}: the server's file "
                "changed. Check it, then update the pin (or remove it to accept any content)."
            )
        os.replace(partial, target)  # a reader never sees half a file
    except urllib.error.HTTPError as exc:
        if exc.code >= 500:
            raise SourceUnavailableError(
                f"{url} answered {exc.code} {exc.reason}; will retry."
            ) from None
        raise DataSourceError(
            f"{url} answered {exc.code} {exc.reason}: check data.source."
        ) from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SourceUnavailableError(
            f"{url} could not be reached ({reason}); will retry."
        ) from None
    finally:
        Path(partial).unlink(missing_ok=True)
    return target


# Where a database password comes from when params hold none (they never do: nlpflow.config.params
# refuses it). None: libpq's own lookup, PGPASSWORD then ~/.pgpass. The Prefect layer installs
# one that reads the Secret block NLPFLOW_DB_SECRET names (tasks/credentials.py): the library
# itself never imports prefect.
PasswordSource = Callable[[], str | None]
_password_source: PasswordSource | None = None


def use_password_source(source: PasswordSource | None) -> None:
    global _password_source
    _password_source = source


def _installed_password() -> str | None:
    if _password_source is not None:
        return _password_source()
    from nlpflow.config.settings import load_settings

    name = load_settings().db_secret
    if name:  # e.g. `dvc repro`: no Prefect here, and libpq would fail with a vaguer message
        raise DataSourceError(
            f"NLPFLOW_DB_SECRET={name} is read by Prefect flow runs (nlpflow run, nlpflow infer, "
            "deployments); this command runs without Prefect: export PGPASSWORD or write "
            "~/.pgpass for it."
        )
    return None


CONNECT_TIMEOUT_S = 20  # a database that does not answer: SourceUnavailableError, retried


def build_engine(url: str, *, password: str | None = None) -> Any:
    """The SQLAlchemy engine of a database source, for gather and batch inference alike.

    A bare postgresql:// or postgres:// gets psycopg (SQLAlchemy has no driver for the
    latter). The password, given or from the installed source, goes into the URL object,
    whose str() and repr() mask it, never into a string that could be logged."""
    import sqlalchemy as sa

    for bare in ("postgresql://", "postgres://"):
        if url.startswith(bare):
            url = "postgresql+psycopg://" + url.removeprefix(bare)
    target = sa.engine.make_url(url)
    if password is None and target.password is None and target.host:
        password = _installed_password()
    if password is not None:
        target = target.set(password=password)
    connect_args = {}
    if (
        target.get_backend_name() in {"postgresql", "mysql"}
        and "connect_timeout" not in target.query
    ):
        # libpq and MySQL's drivers wait forever for a server that accepts and never answers
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
    return sa.create_engine(target, connect_args=connect_args)


def read_sql(
    url: str, *, query: str | None, timestamp_column: str | None, cutoff: str | None
) -> tuple[Any, str | None]:
    """Run `query`; with a timestamp column keep rows up to the cut-off, oldest first.

    Returns the rows and the cut-off used (the current time when none was given), so the
    manifest can record it and a later run can gather the very same snapshot.
    """
    chunks, cutoff = read_sql_chunks(
        url, query=query, timestamp_column=timestamp_column, cutoff=cutoff, rows=None
    )
    return next(chunks), cutoff


def read_sql_chunks(
    url: str,
    *,
    query: str | None,
    timestamp_column: str | None,
    cutoff: str | None,
    rows: int | None,
) -> tuple[Iterator[Any], str | None]:
    """read_sql's rows `rows` at a time (None: one frame of all), and the cut-off used.

    In chunks the query runs once, through a server-side cursor (SQLAlchemy's stream_results:
    PostgreSQL's named cursor, MySQL's SSCursor), so the client holds one chunk, not the
    result; drivers without one (SQLite) page through their own cursor."""
    if not query:
        raise DataSourceError(f"data.source {url!r} is a database: set data.query to the SQL.")
    engine = build_engine(url)
    sql, bind = query, {}
    if timestamp_column:
        cutoff = cutoff or datetime.now(UTC).isoformat(timespec="seconds")
        column = engine.dialect.identifier_preparer.quote(timestamp_column)
        sql = (
            f"SELECT * FROM ({query}) AS nlpflow_source WHERE {column} <= :cutoff ORDER BY {column}"
        )
        bind = {"cutoff": datetime.fromisoformat(cutoff)}
    return _query_frames(engine, sql, bind, rows), cutoff


@contextmanager
def _sql_errors(engine: Any) -> Iterator[None]:
    """A failed query as nlpflow's errors (retried, or the user's to fix); the engine closed."""
    import pandas as pd
    import sqlalchemy as sa

    try:
        yield
    except sa.exc.OperationalError as exc:  # cannot connect, server gone: worth a retry
        raise SourceUnavailableError(f"database {engine.url!r} unavailable: {exc.orig}") from None
    except (sa.exc.DBAPIError, pd.errors.DatabaseError) as exc:  # the SQL is wrong: user's to fix
        detail = getattr(exc, "orig", None) or getattr(exc.__cause__, "orig", None) or exc
        raise DataSourceError(f"data.query failed on {engine.url!r}: {detail}") from None
    finally:
        engine.dispose()


def _query_frames(engine: Any, sql: str, bind: dict[str, Any], rows: int | None) -> Iterator[Any]:
    import pandas as pd
    import sqlalchemy as sa

    if rows is None:  # all at once, the connection closed before the frame is handed over
        with _sql_errors(engine), engine.connect() as connection:
            frame = pd.read_sql_query(sa.text(sql), connection, params=bind, dtype=object)
        yield frame
        return
    with _sql_errors(engine), engine.connect() as connection:
        streaming = connection.execution_options(stream_results=True, max_row_buffer=rows)
        yield from pd.read_sql_query(
            sa.text(sql), streaming, params=bind, dtype=object, chunksize=rows
        )


HF_CACHE = ".nlpflow/cache/hf"  # under the project: downloads and Arrow files of `datasets`
HF_SNAPSHOT = ".nlpflow/cache/hf/snapshot.parquet"  # the loaded splits, as gather reads them


def hf_cache_dir(project_cache: Path) -> Path:
    """Where `datasets` downloads: HF_DATASETS_CACHE when the user set it, else a folder of
    the project, so a run does not fill the home directory."""
    chosen = os.environ.get("HF_DATASETS_CACHE")
    return Path(chosen).expanduser() if chosen else project_cache


def load_hf(target: str | Path, *, config: str | None, revision: str | None, cache: Path) -> Any:
    """The DatasetDict (or Dataset) a Hub id or local folder names; errors say what to fix."""
    try:
        import datasets
    except ImportError:
        raise DataSourceError(
            f"data.source {HF_PREFIX}{target} needs the Hugging Face `datasets` package: "
            "pip install datasets."
        ) from None
    from datasets.exceptions import DatasetNotFoundError
    from huggingface_hub.errors import HfHubHTTPError, RevisionNotFoundError

    if isinstance(target, Path) and any(
        (target / marker).is_file() for marker in ("dataset_dict.json", "state.json")
    ):  # written by save_to_disk: load_dataset would read its Arrow shards as plain data files
        return datasets.load_from_disk(str(target))
    name = f"{HF_PREFIX}{target}"
    try:
        return datasets.load_dataset(str(target), config, revision=revision, cache_dir=cache)
    except DatasetNotFoundError:
        raise DataSourceError(
            f"{name} is not a dataset on the Hugging Face Hub, nor a local folder: check "
            "data.source (private or gated datasets also need `hf auth login` or HF_TOKEN)."
        ) from None
    except RevisionNotFoundError:
        raise DataSourceError(
            f"{name} has no revision {revision!r}: check data.hf_revision."
        ) from None
    except ValueError as exc:
        hint = " Set data.hf_config to one of them." if _about_configs(exc) else ""
        raise DataSourceError(f"{name} could not be loaded: {exc}{hint}") from None
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else 0
        if status >= 500:
            raise SourceUnavailableError(
                f"the Hub answered {status} for {name}; will retry."
            ) from None
        raise DataSourceError(f"the Hub refused {name}: {exc}") from None
    except ConnectionError as exc:
        raise _offline_or_unavailable(name, cache, exc) from None


def _about_configs(exc: ValueError) -> bool:
    """Whether `datasets` refused the config: a missing or unknown config name is a plain
    ValueError in datasets 5.2 ("Config name is missing. Please pick one among the available
    configs", "BuilderConfig 'x' not found. Available: [...]"), with no type or attribute of
    its own (InvalidConfigName is only for malformed names), so only its text tells."""
    return "config" in str(exc).lower()


def _offline_or_unavailable(name: str, cache: Path, exc: Exception) -> DataSourceError:
    """Offline mode is the user's setting (retrying cannot help); a network failure may pass."""
    from datasets import config  # its offline flag combines HF_HUB_OFFLINE and HF_DATASETS_OFFLINE

    if config.HF_HUB_OFFLINE:
        return DataSourceError(
            f"{name} is not in the cache {cache} and "
            "HF_HUB_OFFLINE or HF_DATASETS_OFFLINE is set: unset them for one run with network "
            "access (later runs can read the cache offline)."
        )
    return SourceUnavailableError(f"{name} could not be reached ({exc}); will retry.")


def hf_frame(loaded: Any) -> tuple[Any, dict[str, str]]:
    """The splits as one DataFrame with a `split` column (none when only train exists, so
    gather splits it) and ClassLabel integers as their names (lists of them too: a tagger's
    ner_tags); and each split's fingerprint."""
    import pandas as pd
    from datasets import ClassLabel

    from nlpflow.data.splits import SPLIT_ALIASES, SPLIT_COLUMN

    parts = {"train": loaded} if not hasattr(loaded, "keys") else dict(loaded)
    known = [k for k in parts if k.lower() in SPLIT_ALIASES]
    kept = {SPLIT_ALIASES[k.lower()]: parts[k] for k in known}
    if len(kept) < len(known):  # e.g. both "dev" and "validation": which one is meant?
        raise DataSourceError(f"the dataset's splits {known} name one split twice.")
    if not kept:  # e.g. only "unsupervised": nothing labelled to train on
        raise DataSourceError(
            f"the dataset's splits are {sorted(parts)}: none is train/validation/test."
        )
    frames = []
    for split, dataset in kept.items():
        frame = dataset.to_pandas()
        for column, feature in dataset.features.items():
            if isinstance(feature, ClassLabel):  # -1 means "no label" in `datasets`
                frame[column] = [feature.int2str(int(v)) if v >= 0 else None for v in frame[column]]
            elif isinstance(getattr(feature, "feature", None), ClassLabel):  # ner_tags: a list
                named = feature.feature
                frame[column] = [
                    None if v is None else [named.int2str(int(i)) for i in v]
                    for v in frame[column]
                ]  # fmt: skip
        frames.append(frame.assign(**{SPLIT_COLUMN: split}))
    frame = pd.concat(frames, ignore_index=True)
    if set(kept) == {"train"}:
        frame = frame.drop(columns=SPLIT_COLUMN)
    return frame, {split: str(getattr(ds, "_fingerprint", "")) for split, ds in kept.items()}


def snapshot_hf(
    source: str,
    *,
    root: Path,
    resolve: Callable[[str], Path],
    config: str | None,
    revision: str | None,
) -> tuple[Path, dict[str, str]]:
    """Load an `hf:` source and write its splits to the project's Parquet snapshot; returns
    the snapshot and each split's fingerprint. `resolve` turns a relative folder into a path
    (against the data root); a name that is no folder there is a Hub id."""
    name = source.removeprefix(HF_PREFIX)
    if not name.strip():
        raise DataSourceError("data.source hf: names no dataset: write e.g. hf:imdb.")
    target: str | Path = resolve(name) if resolve(name).is_dir() else name
    loaded = load_hf(target, config=config, revision=revision, cache=hf_cache_dir(root / HF_CACHE))
    frame, fingerprints = hf_frame(loaded)
    snapshot = root / HF_SNAPSHOT
    snapshot.parent.mkdir(parents=True, exist_ok=True)
    partial = snapshot.with_name(f".partial-{snapshot.name}")
    frame.to_parquet(partial, index=False)
    os.replace(partial, snapshot)  # a failed run leaves the previous snapshot whole
    return snapshot, fingerprints


# ---------------------------------------------------------------- the dispatch on the kind


def fetch_source(
    data: DataParams,
    *,
    root: Path,
    resolve: Callable[[str], Path],
    http_cache: Path,
    sql_snapshot: Path,
    chunk_rows: int | None = None,
) -> tuple[Path, DataParams]:
    """The local file gather reads for data.source, and the data params to read it with: a
    download (http), a snapshot of a Hugging Face dataset's splits (hf) or of a query's rows
    (sql), or the path itself (a file, a folder or a glob, resolved against the data root).
    With `chunk_rows`, a query's rows are fetched and written that many at a time: the
    snapshot is then a folder of Parquet parts beside `sql_snapshot` (snapshot_sql_chunks)."""
    match source_kind(data.source):
        case "http":
            return fetch_http(data.source, cache=http_cache, sha256=data.sha256), data
        case "hf":
            snapshot, fingerprints = snapshot_hf(
                data.source, root=root, resolve=resolve, config=data.hf_config,
                revision=data.hf_revision,
            )  # fmt: skip
            update = {"format": "parquet", "hf_fingerprint": fingerprints}
            return snapshot, data.model_copy(update=update)
        case "sql":
            snapshot, cutoff = (
                _snapshot_sql(data, sql_snapshot)
                if chunk_rows is None
                else snapshot_sql_chunks(data, sql_snapshot.with_suffix(""), rows=chunk_rows)
            )
            # the manifest records the cut-off actually used, so the snapshot can be gathered again
            return snapshot, data.model_copy(update={"cutoff": cutoff, "format": "parquet"})
        case _:
            return resolve(data.source), data


def _snapshot_sql(data: DataParams, snapshot: Path) -> tuple[Path, str | None]:
    frame, cutoff = read_sql(
        data.source, query=data.query, timestamp_column=data.timestamp_column, cutoff=data.cutoff
    )
    if frame.empty:
        raise DataSourceError(
            f"data.query returned no rows (cut-off {cutoff}): nothing to train on."
        )
    snapshot.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(snapshot, index=False)
    return snapshot, cutoff


def snapshot_sql_chunks(data: DataParams, folder: Path, *, rows: int) -> tuple[Path, str | None]:
    """A query's rows as a folder of Parquet files, one a chunk of `rows` rows (each typed by its
    own rows, as pandas types one frame: gather reads a part as it reads the whole snapshot)."""
    import shutil

    chunks, cutoff = read_sql_chunks(
        data.source, query=data.query, timestamp_column=data.timestamp_column,
        cutoff=data.cutoff, rows=rows,
    )  # fmt: skip
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".partial-"))
    try:
        count = 0
        for i, frame in enumerate(chunks):
            frame.to_parquet(staging / f"part-{i:06d}.parquet", index=False)
            count += len(frame)
        if not count:
            raise DataSourceError(
                f"data.query returned no rows (cut-off {cutoff}): nothing to train on."
            )
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(staging, folder)  # a failed run leaves the previous snapshot whole
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder, cutoff


def source_fingerprint(data: DataParams, *, resolve: Callable[[str], Path]) -> str | None:
    """What gather reads, or None when only fetching it can tell (a query, an unpinned URL or
    dataset): gather then always runs, and the stages after it are keyed on its output."""
    from nlpflow.hashing import digest, hash_path

    match source_kind(data.source):
        case "http":
            return f"sha256:{data.sha256}" if data.sha256 else None
        case "hf":
            return f"{data.source}@{data.hf_revision}" if data.hf_revision else None
        case "sql":
            return None
    path = resolve(data.source)
    if is_glob(path):
        return digest({str(p): hash_path(p) for p in sorted(path.parent.glob(path.name))})
    return hash_path(path)
