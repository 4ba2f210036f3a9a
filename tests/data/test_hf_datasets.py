"""`hf:` sources gathered through the real `datasets` library, from tiny local dataset folders
built here (nothing is downloaded: the Hub is offline for every test)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from nlpflow.errors import DataSourceError, SourceUnavailableError
from nlpflow.config.params import parse_params
from nlpflow.pipeline.runs import make_context
from nlpflow.config.settings import Settings
from nlpflow.data.sources import HF_SNAPSHOT, dvc_can_track
from nlpflow.pipeline.stages import run_stage

datasets = pytest.importorskip("datasets")

TEXTS = {
    "neg": ["dull plot", "bad acting", "a waste of time", "boring and slow", "awful ending"],
    "pos": ["great film", "loved it", "a fine cast", "moving story", "superb score"],
}


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.delenv("HF_DATASETS_CACHE", raising=False)
    # datasets reads both variables at import; conftest sets HF_HUB_OFFLINE before that
    assert datasets.config.HF_HUB_OFFLINE is True


def _rows(n: int, *, offset: int = 0) -> dict[str, list[Any]]:
    labels = [i % 2 for i in range(offset, offset + n)]
    texts = [f"{TEXTS['pos' if y else 'neg'][i % 5]} {i}" for i, y in enumerate(labels, offset)]
    return {"text": texts, "label": labels}


def _saved_dataset(folder: Path, splits: dict[str, dict[str, list[Any]]]) -> Path:
    features = datasets.Features(
        {"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])}
    )
    parts = {
        name: datasets.Dataset.from_dict(rows, features=features) for name, rows in splits.items()
    }
    datasets.DatasetDict(parts).save_to_disk(str(folder))
    return folder


def _gather(root: Path, data: dict[str, Any], data_root: Path | None = None) -> dict[str, Any]:
    params = parse_params({"data": data})
    settings = Settings(project_dir=root, data_root=data_root)
    run_stage("gather", make_context(root, params, settings, tracked=False))
    return json.loads((root / "data/gathered/manifest.json").read_text())


def test_saved_dataset_dict_keeps_its_splits_and_names_class_labels(tmp_path: Path) -> None:
    test_rows = _rows(6, offset=40)
    test_rows["label"][0] = -1  # `datasets` writes -1 for an unlabelled row
    folder = _saved_dataset(
        tmp_path / "reviews", {"train": _rows(20), "dev": _rows(4, offset=20), "test": test_rows}
    )
    manifest = _gather(tmp_path / "project", {"source": f"hf:{folder}"})

    assert manifest["rows"] == {"train": 20, "validation": 4, "test": 6}
    assert manifest["split_from_source"] is True
    assert manifest["labels"] == {"neg": 14, "pos": 15, "<missing>": 1}
    assert manifest["format"] == "parquet"
    assert manifest["source"] == str(tmp_path / "project" / HF_SNAPSHOT)
    assert manifest["params"]["source"] == f"hf:{folder}"
    assert (manifest["params"]["hf_config"], manifest["params"]["hf_revision"]) == (None, None)
    fingerprints = manifest["params"]["hf_fingerprint"]
    assert sorted(fingerprints) == ["test", "train", "validation"]
    assert all(len(f) >= 8 for f in fingerprints.values())
    gathered = pd.read_parquet(tmp_path / "project/data/gathered/validation.parquet")
    assert list(gathered["text"]) == _rows(4, offset=20)["text"]
    assert list(gathered["label"]) == ["neg", "pos", "neg", "pos"]


def test_token_dataset_with_class_label_ner_tags_is_gathered_as_bio(tmp_path: Path) -> None:
    """The Hub's NER layout (wnut_17, conll2003): tokens, and ner_tags a list of ClassLabel
    integers, here written in IOB1 (an I- opens an entity): named, converted, splits kept."""
    names = ["O", "I-PER", "B-PER", "I-LOC"]
    features = datasets.Features({
        "tokens": datasets.Sequence(datasets.Value("string")),
        "ner_tags": datasets.Sequence(datasets.ClassLabel(names=names)),
    })  # fmt: skip
    rows = {
        "tokens": [["Ana", "Lima", "flew", "to", "Oslo"], ["Ben", "met", "Ana", "Ana"], []],
        "ner_tags": [[1, 1, 0, 0, 3], [1, 0, 1, 2], []],
    }  # IOB1: "Ana Ana" is two people, the second opened by B-
    parts = {
        split: datasets.Dataset.from_dict(rows, features=features)
        for split in ("train", "validation", "test")
    }
    folder = tmp_path / "ner"
    datasets.DatasetDict(parts).save_to_disk(str(folder))
    params = parse_params({"task": "token-classification", "data": {"source": f"hf:{folder}"},
                           "train": {"family": "rules"}})  # fmt: skip
    root = tmp_path / "project"
    run_stage("gather", make_context(root, params, Settings(project_dir=root), tracked=False))
    manifest = json.loads((root / "data/gathered/manifest.json").read_text())
    assert manifest["split_from_source"] is True
    assert manifest["rows"] == {"train": 2, "validation": 2, "test": 2}  # empty records left out
    gathered = pd.read_parquet(root / "data/gathered/test.parquet")
    assert [list(t) for t in gathered["tokens"]] == rows["tokens"][:2]
    assert [list(t) for t in gathered["tags"]] == [
        ["B-PER", "I-PER", "O", "O", "B-LOC"], ["B-PER", "O", "B-PER", "B-PER"]
    ]  # fmt: skip
    assert list(gathered["text"]) == ["Ana Lima flew to Oslo", "Ben met Ana Ana"]


def test_token_table_without_tag_names_is_refused(tmp_path: Path) -> None:
    from nlpflow.data.ner.formats import read_token_table

    table = tmp_path / "ner.parquet"
    pd.DataFrame({"tokens": [["Ana"]], "ner_tags": [[2]]}).to_parquet(table)
    with pytest.raises(DataSourceError, match=r"record 1 .*tags \[2\] are not tag names"):
        read_token_table(table)
    pd.DataFrame({"words": [["Ana"]]}).to_parquet(table)
    with pytest.raises(DataSourceError, match="reads a `tokens` column and a `ner_tags`"):
        read_token_table(table)


def test_only_a_train_split_is_split_by_gather(tmp_path: Path) -> None:
    folder = _saved_dataset(tmp_path / "reviews", {"train": _rows(40)})
    manifest = _gather(
        tmp_path / "project",
        {"source": f"hf:{folder}", "split": {"validation": 0.1, "test": 0.2, "seed": 1}},
    )
    assert manifest["split_from_source"] is False
    assert manifest["rows"] == {"train": 28, "validation": 4, "test": 8}
    assert manifest["labels"] == {"neg": 20, "pos": 20}


def _data_files_folder(folder: Path) -> Path:
    """A dataset repository as on the Hub: data files and a README declaring two configs."""
    for config, n in (("short", 8), ("long", 12)):
        for split, offset in (("train", 0), ("test", 100)):
            rows = _rows(n // (4 if split == "test" else 1), offset=offset)
            part = pd.DataFrame(
                {
                    "review": rows["text"],
                    "stars": ["one" if y == 0 else "five" for y in rows["label"]],
                }
            )
            (folder / config).mkdir(parents=True, exist_ok=True)
            part.to_csv(folder / config / f"{split}.csv", index=False)
    entries = "".join(
        f"- config_name: {c}\n  data_files:\n"
        f"  - split: train\n    path: {c}/train.csv\n  - split: test\n    path: {c}/test.csv\n"
        for c in ("short", "long")
    )
    (folder / "README.md").write_text(f"---\nconfigs:\n{entries}---\n")
    return folder


def test_data_files_folder_with_a_config_resolves_against_the_data_root(tmp_path: Path) -> None:
    _data_files_folder(tmp_path / "data_root" / "reviews")
    project = tmp_path / "project"
    manifest = _gather(
        project,
        {"source": "hf:reviews", "hf_config": "long", "text_column": "review",
         "label_column": "stars"},
        data_root=tmp_path / "data_root",
    )  # fmt: skip
    assert manifest["rows"]["test"] == 3
    assert manifest["rows"]["train"] + manifest["rows"]["validation"] == 12
    assert manifest["labels"] == {"five": 7, "one": 8}
    assert manifest["params"]["hf_config"] == "long"
    assert (project / ".nlpflow/cache/hf/reviews").is_dir()  # `datasets` cached it in the project


def test_hf_datasets_cache_set_by_the_user_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _data_files_folder(tmp_path / "reviews")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "user-cache"))
    data = {"source": f"hf:{folder}", "hf_config": "short", "text_column": "review",
            "label_column": "stars"}  # fmt: skip
    manifest = _gather(tmp_path / "project", data)
    assert sum(manifest["rows"].values()) == 8 + 2
    assert any((tmp_path / "user-cache").iterdir())
    assert not (tmp_path / "project/.nlpflow/cache/hf/reviews").exists()


def test_a_wrong_config_names_the_configs_there_are(tmp_path: Path) -> None:
    folder = _data_files_folder(tmp_path / "reviews")
    with pytest.raises(DataSourceError, match=r"'medium'.*short.*long.*data\.hf_config") as info:
        _gather(tmp_path / "project", {"source": f"hf:{folder}", "hf_config": "medium"})
    assert not info.value.retryable


def test_an_uncached_hub_id_offline_says_to_go_online(tmp_path: Path) -> None:
    with pytest.raises(DataSourceError, match="HF_HUB_OFFLINE") as info:
        _gather(tmp_path, {"source": "hf:nlpflow-tests/no-such-dataset"})
    assert not isinstance(info.value, SourceUnavailableError)  # retrying cannot help
    assert str(tmp_path / ".nlpflow/cache/hf") in str(info.value)


def test_an_empty_id_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataSourceError, match="names no dataset"):
        _gather(tmp_path, {"source": "hf:"})


def test_hf_sources_are_not_dvc_dependencies() -> None:
    # DVC would look for a local file named "hf:imdb"; the flow must not record dvc.lock
    assert dvc_can_track("hf:imdb") is False
    assert dvc_can_track("hf:nyu-mll/glue") is False
    assert dvc_can_track("data/sample/support_tickets.csv") is True
