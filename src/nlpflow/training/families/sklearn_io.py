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
import re
from pathlib import Path
from typing import Any

from nlpflow.errors import ModelError

SUFFIX = ".skops"
LEGACY_SUFFIX = ".joblib"
TRUST_PICKLES_ENV = "NLPFLOW_TRUST_PICKLES"
_BY_ID = re.compile(r"^(\d+)(\.\w+)$")  # skops' file names: an object's id() and a suffix
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
            "nlpflow.training.families.sklearn_io.TRUSTED if it belongs to an nlpflow pipeline."
        )
    path.write_bytes(_canonical(data))


def _canonical(data: bytes) -> bytes:
    """skops' archive with the same bytes for the same object: skops names arrays and marks
    shared objects by id() (a memory address) and stamps each entry with the time, so a model
    retrained identically would differ on disk, and DVC, the fingerprints and register's
    check that it uploads what train wrote would see a change. Renumbered in order of first
    appearance, entries sorted, times fixed."""
    import io
    import json
    import zipfile

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        schema = json.loads(archive.read("schema.json"))
        entries = {name: archive.read(name) for name in archive.namelist()}
    numbers: dict[int, int] = {}

    def renumber(node: Any) -> Any:
        if isinstance(node, list):
            return [renumber(item) for item in node]
        if not isinstance(node, dict):
            return node
        out = {}
        for key, value in node.items():
            if key == "__id__" and isinstance(value, int):
                value = numbers.setdefault(value, len(numbers) + 1)
            elif key == "file" and isinstance(value, str) and (named := _BY_ID.match(value)):
                value = f"{numbers.setdefault(int(named[1]), len(numbers) + 1)}{named[2]}"
            out[key] = renumber(value)
        return out

    schema = renumber(schema)
    renamed = {"schema.json": json.dumps(schema, indent=2).encode()}
    for name, content in entries.items():
        if name != "schema.json":
            named = _BY_ID.match(name)
            renamed[f"{numbers[int(named[1])]}{named[2]}" if named else name] = content
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(renamed):
            archive.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), renamed[name])
    return out.getvalue()


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
