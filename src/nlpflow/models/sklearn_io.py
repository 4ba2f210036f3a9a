"""scikit-learn objects saved with skops: a file that loads without running code.

A joblib file is a pickle: whoever can write `models/model/` or the artifact store could make
loading it run any code. skops stores the objects' state and rebuilds only types it is told to
trust. Beyond skops' own default (scikit-learn's estimators, numpy, scipy), nlpflow trusts
exactly the types its own pipelines hold (TRUSTED); a file naming any other type is refused.

Models saved as .joblib by an older nlpflow are refused too, with the fix (retrain, which
writes .skops), unless NLPFLOW_TRUST_PICKLES=1 says the user trusts them: a setting for one
migration run, never a default, since the refusal is the protection.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from nlpflow.errors import ModelError

SUFFIX = ".skops"
LEGACY_SUFFIX = ".joblib"
TRUST_PICKLES_ENV = "NLPFLOW_TRUST_PICKLES"
# What nlpflow's pipelines hold beyond skops' defaults: the calibrated linear SVM's wrapper and
# its calibrators (sigmoid, temperature; isotonic uses sklearn's trusted IsotonicRegression).
TRUSTED = frozenset({
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.calibration._TemperatureScaling",
})  # fmt: skip


def save_sklearn(obj: Any, path: Path) -> None:
    """Write `obj` to `path` (a .skops file); refuses an object that would not load back."""
    import skops.io as sio

    data = sio.dumps(obj)
    if unknown := sorted(set(sio.get_untrusted_types(data=data)) - TRUSTED):
        raise ModelError(
            f"cannot save {type(obj).__name__} to {path.name}: it holds {', '.join(unknown)}, "
            "which nlpflow's loader does not trust; add the type to "
            "nlpflow.models.sklearn_io.TRUSTED if it belongs to an nlpflow pipeline."
        )
    path.write_bytes(data)


def load_sklearn(path: Path) -> Any:
    """The object saved at `path` (its .skops file; the .joblib of an older nlpflow only with
    NLPFLOW_TRUST_PICKLES=1). A file holding a type outside TRUSTED is refused, unloaded."""
    import skops.io as sio

    safe = path.with_suffix(SUFFIX)
    if not safe.exists():
        return _load_legacy(path.with_suffix(LEGACY_SUFFIX), expected=safe)
    try:
        found = set(sio.get_untrusted_types(file=safe))
    except Exception as exc:  # not a zip, no schema, bad JSON...: not a skops file
        raise ModelError(
            f"{safe} is not a readable skops file ({type(exc).__name__}: {exc}); it was damaged "
            "or replaced. Retrain to write it again (nlpflow run --force)."
        ) from None
    if unknown := sorted(found - TRUSTED):
        raise ModelError(
            f"refusing to load {safe}: it names types nlpflow never saves "
            f"({', '.join(unknown[:5])}), so it was changed or not written by nlpflow. Retrain "
            "(nlpflow run --force), or restore the file from the run that wrote it."
        )
    return sio.load(safe, trusted=sorted(found))


def _load_legacy(legacy: Path, *, expected: Path) -> Any:
    if not legacy.exists():
        raise ModelError(f"{expected} is missing: the model folder is incomplete; retrain.")
    if os.environ.get(TRUST_PICKLES_ENV) != "1":
        raise ModelError(
            f"{legacy} is a pickle (saved by an older nlpflow), and loading a pickle runs "
            f"whatever code it holds; nlpflow now saves {expected.name}. Retrain to write it "
            f"(nlpflow run --force), or, if you trust where the file came from, set "
            f"{TRUST_PICKLES_ENV}=1 for that run."
        )
    import joblib

    return joblib.load(legacy)
