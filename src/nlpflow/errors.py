"""Errors raised at the boundaries of nlpflow.

Every error carries a message that says what is wrong and how to fix it. The CLI prints that
message (no traceback) and exits with the error's `exit_code`.
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


def disk_full(exc: BaseException, *, doing: str) -> DiskFullError | None:
    """The DiskFullError for `exc` when it (or an error it came from) is a full disk: an
    OSError ENOSPC/EDQUOT, or SQLite's "database or disk is full" inside MLflow's or
    Prefect's store. None for anything else."""
    import errno

    seen: BaseException | None = exc
    for _ in range(10):  # the chain of causes: MlflowException <- sqlalchemy <- sqlite3
        if seen is None:
            return None
        full = isinstance(seen, OSError) and seen.errno in {errno.ENOSPC, errno.EDQUOT}
        if full or "database or disk is full" in str(seen) or "No space left" in str(seen):
            where = f" ({seen.filename})" if isinstance(seen, OSError) and seen.filename else ""
            return DiskFullError(
                f"no space left on a disk{where} while {doing}. Free space on the disk that "
                "holds the project, the tracking store or the temporary folder, then rerun: "
                "completed stages are reused and `nlpflow doctor` closes what this run left open."
            )
        seen = seen.__cause__ or seen.__context__
    return None
