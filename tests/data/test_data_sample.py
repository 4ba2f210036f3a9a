"""data.sample (issue 18): a seeded subsample of train, stratified by label, for quick
iteration; validation and test whole unless asked; recorded in the manifest; the same rows
whether gather reads in memory or in chunks (runtime.chunk_rows).

    .venv/bin/python -m pytest tests/data/test_data_sample.py -q
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from pydantic import ValidationError

from nlpflow.config.params import DataParams, RuntimeParams, SampleParams, load_params
from nlpflow.data.gather import gather

# 600 pos, 300 neg, 12 rare: an imbalanced source, as the ones people sample
COUNTS = {"pos": 600, "neg": 300, "rare": 12}


def write_source(path: Path) -> Path:
    rows = [(f"{label} review number {i} of the film", label)
            for label, n in COUNTS.items() for i in range(n)]  # fmt: skip
    pd.DataFrame(rows, columns=["text", "label"]).sample(frac=1.0, random_state=0).to_csv(
        path, index=False
    )
    return path


def gathered(out: Path) -> dict[str, pd.DataFrame]:
    return {s: pd.read_parquet(out / f"{s}.parquet") for s in ("train", "validation", "test")}


def test_a_row_count_keeps_each_label_s_share_and_leaves_validation_and_test_whole(
    tmp_path: Path,
) -> None:
    source = write_source(tmp_path / "reviews.csv")
    whole = gather(source=source, dst=tmp_path / "whole", params=DataParams(source=str(source)))
    params = DataParams(source=str(source), sample=SampleParams(train=64))
    report = gather(source=source, dst=tmp_path / "sampled", params=params)
    full, part = gathered(tmp_path / "whole"), gathered(tmp_path / "sampled")
    assert len(full["train"]) == 639  # 912 rows, 20% test and 10% validation per label
    # 64 of 639 train rows by label share (420/210/9 -> 42.07/21.03/0.90): largest remainder
    assert part["train"]["label"].value_counts().to_dict() == {"pos": 42, "neg": 21, "rare": 1}
    # the rows kept are train rows, in their order
    kept = part["train"]["text"].tolist()
    positions = [full["train"]["text"].tolist().index(t) for t in kept]
    assert positions == sorted(positions)
    for split in ("validation", "test"):
        pd.testing.assert_frame_equal(part[split], full[split])
    assert report.sampled == {"seed": 13, "train": {"rows": 639, "kept": 64}}
    assert report.rows == {"train": 64, "validation": whole.rows["validation"],
                           "test": whole.rows["test"]}  # fmt: skip
    manifest = json.loads((tmp_path / "sampled" / "manifest.json").read_text())
    assert manifest["sampled"] == report.sampled
    assert manifest["params"]["sample"] == {
        "train": 64,
        "validation": None,
        "test": None,
        "seed": 13,
    }


def test_a_share_is_seeded_and_each_label_keeps_a_row(tmp_path: Path) -> None:
    source = write_source(tmp_path / "reviews.csv")

    def draw(seed: int, name: str) -> pd.DataFrame:
        sample = SampleParams(train=0.01, validation=0.5, seed=seed)
        gather(
            source=source, dst=tmp_path / name, params=DataParams(source=str(source), sample=sample)
        )
        return gathered(tmp_path / name)

    first, again, other = draw(13, "a"), draw(13, "b"), draw(14, "c")
    # 1% of 639 is 6: 4 pos, 2 neg by share (rare's 0.08 rounds away), then rare's one row
    # taken from the largest
    assert first["train"]["label"].value_counts().to_dict() == {"pos": 3, "neg": 2, "rare": 1}
    assert first["validation"]["label"].value_counts().to_dict() == {
        "pos": 30,
        "neg": 15,
        "rare": 1,
    }
    pd.testing.assert_frame_equal(first["train"], again["train"])
    assert first["train"]["text"].tolist() != other["train"]["text"].tolist()


@pytest.mark.parametrize("as_folder", [False, True])
def test_gather_in_chunks_samples_the_same_rows(tmp_path: Path, as_folder: bool) -> None:
    source = write_source(tmp_path / "reviews.csv")
    if as_folder:  # a folder of split files: the source's own splits, sampled alike
        folder = tmp_path / "folder"
        folder.mkdir()
        frame = pd.read_csv(source)
        frame.iloc[:700].to_csv(folder / "train.csv", index=False)
        frame.iloc[700:].to_csv(folder / "test.csv", index=False)
        source = folder
    params = DataParams(source=str(source), sample=SampleParams(train=50, test=0.5, seed=3))
    memory = gather(source=source, dst=tmp_path / "memory", params=params)
    chunked = gather(source=source, dst=tmp_path / "chunks", params=params,
                     runtime=RuntimeParams(chunk_rows=100))  # fmt: skip
    assert chunked.streamed is not None and memory.streamed is None
    assert chunked.sampled == memory.sampled
    assert memory.rows["train"] == 50
    for split, frame in gathered(tmp_path / "memory").items():
        pd.testing.assert_frame_equal(gathered(tmp_path / "chunks")[split], frame)


def test_sample_sizes_are_a_count_or_a_share(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("data:\n  sample: {train: 2000.0}\n")
    assert load_params(params).data.sample == SampleParams(train=2000)  # a count, as written
    for wrong in (0, 1.5, -0.1, True):
        with pytest.raises(ValidationError):
            SampleParams(train=wrong)
    assert DataParams().sample is None  # all rows by default


def test_a_sample_is_part_of_gather_s_cache_key(tmp_path: Path) -> None:
    """A run on a sample never reuses the whole set's gathered splits, nor the reverse."""
    from nlpflow.config.settings import Settings
    from nlpflow.pipeline.fingerprint import stage_key
    from nlpflow.pipeline.stages import StageContext, get_stage
    from tests.conftest import REPO

    (tmp_path / "data/sample").mkdir(parents=True)
    (tmp_path / "data/sample/support_tickets.csv").write_text("text,label\nhi,a\n")
    settings = Settings(project_dir=tmp_path, tracking_uri=f"sqlite:///{tmp_path / 'm.db'}")

    def key(*overrides: str) -> str | None:
        params = load_params(REPO / "params.yaml", list(overrides))
        ctx = StageContext(root=tmp_path, params=params, settings=settings)
        return stage_key(get_stage("gather"), ctx)

    whole, sampled = key(), key("data.sample={train: 2000}")
    assert whole is not None and sampled is not None and whole != sampled
    assert key("data.sample={train: 2000, seed: 7}") != sampled
