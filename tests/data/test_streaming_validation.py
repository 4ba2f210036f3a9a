"""validate chunk by chunk (runtime.chunk_rows / max_memory_mb) gives what validate in memory
gives: every check's success, counts, observed values, offending rows per split and examples;
the quarantined rows; the rows accepted; the drift profile.

    .venv/bin/python -m pytest tests/data/test_streaming_validation.py -q

The data (3,000 rows) plants what the data-wide checks look for, across chunks of 256 rows:
nulls, blanks, a repeat 1,500 rows after its first copy, test texts in train (exact and up to
case and punctuation), validation and test texts that are phrases of train texts (whole words,
4+ words: leak_subphrase; one of 3 words, under the minimum), a label only test has, a label spelled two ways, a damaged text, a
too-long text. Each case runs both paths once per module (GX is slow to start).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from nlpflow.config.params import DataParams, RuntimeParams, ValidateParams
from nlpflow.data.streaming.validation import Splits, sketch_splits
from nlpflow.data.suites import text_classification as texts
from nlpflow.data.validation import validate
from nlpflow.errors import DataValidationError

CHUNK = 256
LABELS = ("billing", "shipping", "refund")
WORDS = ("order", "parcel", "invoice", "card", "late", "box", "twice", "address", "courier")
# checks whose offending rows quarantine moves aside (case "quarantine")
MOVED = ("text_not_null", "text_not_blank", "duplicates", "leak_exact", "leak_normalized",
         "label_in_set", "label_variants", "text_length", "encoding_damage", "class_min_count", "leak_subphrase")  # fmt: skip


def planted_splits() -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(7)

    def rows(split: str, n: int) -> pd.DataFrame:
        labels = [LABELS[i % 3] for i in range(n)]
        body = [" ".join(rng.choice(WORDS, int(rng.integers(3, 12)))) for _ in range(n)]
        pairs = enumerate(zip(labels, body, strict=True))
        text = [f"{label} {split} {i} {b}" for i, (label, b) in pairs]
        return pd.DataFrame({"text": pd.Series(text, dtype=object),
                             "label": pd.Series(labels, dtype=object), "source_row": range(n)})  # fmt: skip

    train, validation, test = rows("train", 2000), rows("validation", 300), rows("test", 700)
    train.loc[10, "text"] = None
    validation.loc[5, "text"] = None
    train.loc[50, "text"] = ""
    test.loc[7, "text"] = "   "
    train.loc[1500, "text"] = train.loc[3, "text"]  # a repeat, five chunks after its first copy
    validation.loc[100, "text"] = train.loc[20, "text"]
    test.loc[300, "text"] = train.loc[30, "text"]  # an exact leak
    test.loc[400, "text"] = train.loc[40, "text"].upper() + " !!"  # a leak up to case/punctuation
    # phrases of train texts ("train 60 <words>": only train row 60 holds them), two chunks on
    validation.loc[200, "text"] = " ".join(train.loc[60, "text"].split()[1:6]).upper() + "."
    test.loc[500, "text"] = " ".join(train.loc[1900, "text"].split()[1:5])  # 4 words: flagged
    test.loc[650, "text"] = " ".join(train.loc[70, "text"].split()[1:4])  # 3 words: too short
    test.loc[600, "label"] = "warranty"  # a label train has not
    train.loc[700, "label"] = "Billing "  # a variant of billing
    train.loc[900, "text"] = "broken \ufffd bytes " * 3
    train.loc[1200, "text"] = "long " * 100  # 500 characters: over max_chars below
    train.loc[1800, "label"] = None
    return {"train": train, "validation": validation, "test": test}


REFERENCE = {"rows": 3000, "labels": {"billing": 0.4, "shipping": 0.3, "refund": 0.3},
             "lengths": {"4-7": 0.3, "8-15": 0.7}}  # fmt: skip


@dataclass
class Run:
    summary: dict[str, Any]
    error: str | None
    root: Path


def _run(root: Path, params: ValidateParams, runtime: RuntimeParams | None) -> Run:
    src = root / "gathered"
    if not src.exists():
        src.mkdir(parents=True)
        for name, frame in planted_splits().items():
            frame.to_parquet(src / f"{name}.parquet", index=False)
    (root / "accepted.json").write_text(json.dumps(REFERENCE))
    error = None
    try:
        validate(
            src=src, dst=root / "report", params=params, data=DataParams(), gx_dir=root / "gx",
            accepted=root / "validated", quarantine=root / "quarantine",
            reference=root / "accepted.json", runtime=runtime,
        )  # fmt: skip
    except DataValidationError as exc:
        error = str(exc)
    summary = json.loads((root / "report" / "summary.json").read_text(encoding="utf-8"))
    return Run(summary, error, root)


CASES = {
    "fail": ValidateParams(max_chars=200),
    "quarantine": ValidateParams(max_chars=200, policy=dict.fromkeys(MOVED, "quarantine")),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Run, Run]]:
    out = {}
    for case, params in CASES.items():
        whole = _run(tmp_path_factory.mktemp(f"{case}-whole"), params, None)
        chunked = _run(
            tmp_path_factory.mktemp(f"{case}-chunked"), params, RuntimeParams(chunk_rows=CHUNK)
        )
        out[case] = (whole, chunked)
    return out


def _comparable(summary: dict[str, Any]) -> dict[str, Any]:
    """What must be equal: everything but timings and where files went."""
    return {k: v for k, v in summary.items()
            if k not in ("seconds", "report_html", "quarantine_file", "streamed")}  # fmt: skip


def test_the_streaming_path_ran_in_chunks_and_the_whole_one_did_not(
    runs: dict[str, tuple[Run, Run]],
) -> None:
    whole, chunked = runs["fail"]
    assert whole.summary["streamed"] is None
    # 2,000 + 300 + 700 rows in chunks of 256: 8 + 2 + 3 chunks, no chunk larger
    assert chunked.summary["streamed"] == {"rows_per_chunk": CHUNK, "chunks": 13, "passes": 1}
    assert runs["quarantine"][1].summary["streamed"]["passes"] == 2  # rerun on the rows left


def test_failed_run_reports_the_same_checks_counts_and_examples(
    runs: dict[str, tuple[Run, Run]],
) -> None:
    whole, chunked = runs["fail"]
    assert whole.error is not None and chunked.error is not None
    failed = {c["id"] for c in whole.summary["checks"] if not c["success"]}
    # every planted problem was found (so the equality below compares real findings)
    assert failed >= {"text_not_null", "text_not_blank", "leak_exact", "leak_normalized",
                      "label_in_set", "label_variants", "text_length", "class_min_count",
                      "label_not_null"}  # fmt: skip
    by_id = {c["id"]: c for c in whole.summary["checks"]}
    # train 1500, validation 100, and the exact leak (test 300), each a copy of a train text
    assert by_id["duplicates"]["by_split"] == {"train": 1, "validation": 1, "test": 1}
    # the exact leak too, and the blank test text: it normalises to "", as the empty train text
    assert by_id["leak_normalized"]["unexpected_count"] == 3
    assert by_id["encoding_damage"]["unexpected_count"] == 1  # within its 0.1% tolerance
    # the planted phrases (validation 200, test 500) and the copies of train texts (validation
    # 100, test 300 and 400): a warning by default, which the error does not list
    sub = by_id["leak_subphrase"]
    assert (sub["policy"], sub["by_split"]) == ("warn", {"validation": 2, "test": 3})
    assert sorted((e["split"], e["source_row"]) for e in sub["examples"]) == [
        ("test", 300), ("test", 400), ("test", 500), ("validation", 100), ("validation", 200)]
    assert "leak_subphrase" not in whole.error
    assert any("[leak_subphrase]: 5 rows" in w for w in whole.summary["warnings"])
    assert _comparable(chunked.summary) == _comparable(whole.summary)
    assert chunked.error.replace(str(chunked.root), "ROOT") == whole.error.replace(
        str(whole.root), "ROOT"
    )


def test_drift_is_measured_on_all_rows_alike(runs: dict[str, tuple[Run, Run]]) -> None:
    whole, chunked = runs["fail"]
    drift = {c["id"]: c for c in chunked.summary["checks"] if c["id"].endswith("_drift")}
    expected = {c["id"]: c for c in whole.summary["checks"] if c["id"].endswith("_drift")}
    assert drift == expected
    assert drift["label_drift"]["observed"] is not None and drift["label_drift"]["observed"] > 0


def test_quarantine_moves_the_same_rows_and_accepts_the_same_rows(
    runs: dict[str, tuple[Run, Run]],
) -> None:
    whole, chunked = runs["quarantine"]
    assert whole.error is None and chunked.error is None
    assert whole.summary["quarantined_rows"] >= 10
    assert _comparable(chunked.summary) == _comparable(whole.summary)
    quarantined = "quarantine/quarantined.jsonl"
    assert (chunked.root / quarantined).read_text() == (whole.root / quarantined).read_text()
    for split in ("train", "validation", "test"):
        pd.testing.assert_frame_equal(
            pd.read_parquet(chunked.root / "validated" / f"{split}.parquet"),
            pd.read_parquet(whole.root / "validated" / f"{split}.parquet"),
        )
    profile = json.loads((chunked.root / "accepted.json").read_text())
    assert profile == json.loads((whole.root / "accepted.json").read_text())
    assert profile["rows"] == sum(whole.summary["rows"].values())


def test_chunked_runs_leave_the_next_run_s_gx_project_as_it_was(
    runs: dict[str, tuple[Run, Run]],
) -> None:
    """GX fills its defaults into the result-format dict it is handed: had the chunked runs
    (the fixture's, in this process) shared one with the checkpoint, the next run in memory
    would find its stored checkpoint stale and rewrite gx/, which validate's cache key hashes
    (a no-op rerun then validated again)."""
    whole = runs["fail"][0]
    files = sorted(p for p in (whole.root / "gx").rglob("*") if p.is_file())
    before = {p: p.read_bytes() for p in files}
    assert any(p.parent.name == "checkpoints" for p in files)
    again = _run(whole.root, CASES["fail"], None)
    assert {p: p.read_bytes() for p in files} == before
    assert again.summary["suite_updated"] is False


def test_chunk_tables_are_the_whole_table_cut_in_pieces(tmp_path: Path) -> None:
    splits = planted_splits()
    for name, frame in splits.items():
        frame.to_parquet(tmp_path / f"{name}.parquet", index=False)
    whole = texts.build_frame({k: pd.read_parquet(tmp_path / f"{k}.parquet") for k in splits})
    chunked = Splits(tmp_path, rows=CHUNK)
    sketch = sketch_splits(chunked)
    pieces = [
        texts.stream_frame(frame, split, first, sketch) for split, first, frame in chunked.frames()
    ]
    assert max(len(p) for p in pieces) == CHUNK
    pd.testing.assert_frame_equal(pd.concat(pieces), whole)
    assert texts.stream_profile(sketch) == texts.compute_profile(whole)
