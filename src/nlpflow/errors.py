"""Errors raised at the boundaries of nlpflow, every one of them here with its code.

Every error carries a message that says what is wrong and how to fix it. The CLI prints that
message (no traceback) and exits with the error's `exit_code`. Codes are stable (users search
for them): a new error takes the next free number; NLP030 and up are the run's bookkeeping.

    NLP000 NlpflowError             NLP007 SourceUnavailableError   NLP013 DvcCommandError
    NLP001 ParamsError              NLP008 RegistryError            NLP030 ProjectBusyError
    NLP002 DataSourceError          NLP009 DiskFullError            NLP031 ModelChangedError
                                    NLP014 WorkerLostError
    NLP003 DataValidationError      NLP010 DeployError              NLP032 OutputBusyError
    NLP004 StageInputError          NLP011 RemoteError (UnreachableRemoteError)
    NLP005 TrackingError (RegistryUnavailableError)
    NLP006 ModelError               NLP012 ReproductionError
"""

from __future__ import annotations


class NlpflowError(Exception):
    """Base class: a problem the user can fix."""

    exit_code = 2
    code = "NLP000"
    retryable = False  # True: the same call may succeed later (a server was down)

    def __str__(self) -> str:
        return f"[{self.code}] {super().__str__()}"


class ParamsError(NlpflowError):
    """params.yaml or a --set override is wrong."""

    code = "NLP001"


class DataSourceError(NlpflowError):
    """The data source cannot be read as configured (missing, empty, wrong encoding, columns)."""

    code = "NLP002"


class SourceUnavailableError(DataSourceError):
    """The source's server did not answer or failed (5xx, timeout): worth retrying."""

    code = "NLP007"
    retryable = True


class DataValidationError(NlpflowError):
    """One or more data expectations failed; nothing downstream may run."""

    code = "NLP003"
    exit_code = 3


class StageInputError(NlpflowError):
    """A stage's input is missing: an earlier stage has not run."""

    code = "NLP004"


class TrackingError(NlpflowError):
    """MLflow tracking or registry is misconfigured or unreachable."""

    code = "NLP005"


class ModelError(NlpflowError):
    """The model cannot be built or loaded (e.g. the pretrained encoder is not found)."""

    code = "NLP006"


class RegistryError(NlpflowError):
    """A registry request names a model, version or alias that is not there, or lacks a reason."""

    code = "NLP008"


class DiskFullError(NlpflowError):
    """A disk (the project's, the tracking store's, a temporary folder) has no space left."""

    code = "NLP009"


class DeployError(NlpflowError):
    """A deployment, work pool or Prefect API setting is wrong or unreachable."""

    code = "NLP010"  # was NLP009, DiskFullError's too: one code each


class RemoteError(NlpflowError):
    """The DVC remote is misconfigured, unreachable, or lacks what a run pushed."""

    code = "NLP011"


class UnreachableRemoteError(RemoteError):
    """The remote did not answer: worth retrying."""

    retryable = True


class ReproductionError(NlpflowError):
    """A run cannot be reproduced as asked (unknown, no commit, dirty, its data missing)."""

    code = "NLP012"


class DvcCommandError(NlpflowError):
    """A `dvc` command failed; `said` is DVC's own message."""

    code = "NLP013"

    def __init__(self, message: str, *, said: str) -> None:
        super().__init__(message)
        self.said = said


class WorkerLostError(NlpflowError):
    """A worker process of the engine died (killed, out of memory) while it held work."""

    code = "NLP014"


class RegistryUnavailableError(TrackingError):
    """The tracking server or registry could not be read (away or failing): nothing was
    decided, and the same call may succeed later."""

    retryable = True


class ProjectBusyError(NlpflowError):
    """Another run holds the project's lock (and the user chose not to wait, or waited long enough)."""

    code = "NLP030"


class ModelChangedError(NlpflowError):
    """The model folder register would upload is not the one this run's train stage wrote."""

    code = "NLP031"


class OutputBusyError(ProjectBusyError):
    """Another inference run is writing the same output file (it holds the parts' lock)."""

    code = "NLP032"


def disk_full(exc: BaseException, *, doing: str) -> DiskFullError | None:
    """The DiskFullError for `exc` when it (or an error it came from) is a full disk: an
    OSError ENOSPC/EDQUOT, or SQLite's "database or disk is full" inside MLflow's or
    Prefect's store. None for anything else."""
    seen: BaseException | None = exc
    for _ in range(10):  # the chain of causes: MlflowException <- sqlalchemy <- sqlite3
        if seen is None:
            return None
        if _is_disk_full(seen):
            where = f" ({seen.filename})" if isinstance(seen, OSError) and seen.filename else ""
            return DiskFullError(
                f"no space left on a disk{where} while {doing}. Free space on the disk that "
                "holds the project, the tracking store or the temporary folder, then rerun: "
                "completed stages are reused and `nlpflow doctor` closes what this run left open."
            )
        seen = seen.__cause__ or seen.__context__
    return None


_SQLITE_FULL = 13  # sqlite3.SQLITE_FULL, read as the error's sqlite_errorcode (Python >= 3.11)


def _is_disk_full(exc: BaseException) -> bool:
    import errno

    if isinstance(exc, OSError) and exc.errno in {errno.ENOSPC, errno.EDQUOT}:
        return True
    if getattr(exc, "sqlite_errorcode", None) == _SQLITE_FULL:
        return True
    return _says_disk_full(str(exc))


def _says_disk_full(message: str) -> bool:
    """Only the text is left when the full disk is a server's: MLflow 3.17's REST client
    (RestException) and Prefect 3.9's API client (httpx errors) carry the tracking or Prefect
    server's message, "database or disk is full" (SQLite) or "[Errno 28] No space left on
    device", with no exception type or code behind it."""
    return "database or disk is full" in message or "No space left" in message
