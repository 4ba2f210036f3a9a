"""Token classification's data role through the real gather and preprocess: CoNLL and span
files become one sentence per row in BIO, entity types are renamed and counted, splits are
stratified by entity type, and the text is kept as written. Params refuse what would move the
entity offsets. The task is registered for the test (its modules exist; the task is registered
in nlpflow.config.nlp_tasks once every role has one)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from nlpflow.config.nlp_tasks import NLP_TASKS, NlpTask
from nlpflow.config.params import FAMILIES, DataParams, PreprocessParams, parse_params
from nlpflow.data.gather import gather
from nlpflow.data.preprocess import preprocess
from nlpflow.errors import DataSourceError, ParamsError
from nlpflow.training.train import examples, target_labels
from tests.conftest import REPO

TASK = "token-classification-data-test"
WNUT = REPO.parent / "shared" / "datasets" / "wnut17"


@pytest.fixture
def task(monkeypatch: pytest.MonkeyPatch) -> str:
    entry = NlpTask(
        TASK, "test only", data="token_classification", suite="text_classification",
        scoring="text_classification", output="text_classification", keeps_text=True,
        formats=("auto", "folder", "conll", "spans_jsonl", "label_studio"), inputs="tokens",
        targets="tags", baseline="tfidf_logreg", metrics=("entity_f1", "entity_macro_f1"),
    )  # fmt: skip
    monkeypatch.setitem(NLP_TASKS, TASK, entry)
    monkeypatch.setitem(FAMILIES, "fake_tagger", replace(FAMILIES["tfidf_logreg"],
                        name="fake_tagger", tasks=(TASK,)))  # fmt: skip
    return TASK


def _conll(path: Path, sentences: list[list[tuple[str, str]]]) -> Path:
    path.write_text("\n\n".join("\n".join(f"{t}\t{g}" for t, g in s) for s in sentences) + "\n")
    return path


def _sentences(n: int) -> list[list[tuple[str, str]]]:
    """n sentences: every third names a person (two tokens), every fifth a place."""
    out = []
    for i in range(n):
        words = [("we", "O"), ("met", "O")]
        if i % 3 == 0:
            words += [(f"Ada{i}", "B-person"), ("Lovelace", "I-person")]
        if i % 5 == 0:
            words += [("in", "O"), (f"Paris{i}", "B-place")]
        out.append([*words, (f"#{i}", "O")])
    return out


def test_gather_reads_conll_splits_renames_types_and_stratifies(task: str, tmp_path: Path) -> None:
    source = _conll(tmp_path / "train.conll", _sentences(60) + _sentences(3))  # 3 repeats
    params = DataParams(source=str(source), label_map={"place": "LOC"}, dedupe="exact")
    report = gather(source=source, dst=tmp_path / "g", params=params, task=task)
    assert report.format == "conll"
    assert report.duplicates_dropped == 3
    assert report.labels == {"LOC": 12, "person": 20}  # entities per type, after the rename
    splits = {s: pd.read_parquet(tmp_path / "g" / f"{s}.parquet") for s in report.rows}
    assert sum(len(f) for f in splits.values()) == 60
    assert list(splits["train"].columns[:4]) == ["text", "tokens", "starts", "tags"]
    for frame in splits.values():
        for text, tokens, starts in zip(frame["text"], frame["tokens"], frame["starts"],
                                        strict=True):  # fmt: skip
            assert [text[s : s + len(t)] for s, t in zip(starts, tokens, strict=True)] == list(
                tokens
            )
    # stratified by the first entity type: each split has persons and sentences without any
    first = {s: f["tags"].map(lambda t: next((x[2:] for x in t if x[0] == "B"), "-"))
             for s, f in splits.items()}  # fmt: skip
    for split in ("train", "test"):
        assert {"person", "-"} <= set(first[split]), split
    tags = [list(t) for t in splits["train"]["tags"]]
    assert {t for s in tags for t in s} == {"O", "B-person", "I-person", "B-LOC"}


def test_tokens_are_the_served_tokenizers_and_entities_keep_their_characters(
    task: str, tmp_path: Path
) -> None:
    # spaCy splits "Kew:" and "@ada's": serving will see those pieces, so training does too
    sentence = [("@ada's", "O"), ("trip", "O"), ("to", "O"), ("Kew:", "B-LOC"),
                ("Gardens", "I-LOC"), ("!", "O")]  # fmt: skip
    source = _conll(tmp_path / "train.conll", [sentence] * 10)
    gather(source=source, dst=tmp_path / "g", params=DataParams(), task=task)
    row = pd.read_parquet(tmp_path / "g" / "train.parquet").iloc[0]
    assert list(row["tokens"]) == ["@ada", "'s", "trip", "to", "Kew", ":", "Gardens", "!"]
    assert list(row["tags"]) == ["O", "O", "O", "O", "B-LOC", "I-LOC", "I-LOC", "O"]
    assert [row["text"][s : s + len(t)] for s, t in zip(row["starts"], row["tokens"],
                                                        strict=True)] == list(row["tokens"])  # fmt: skip


def test_split_files_are_read_with_one_scheme_and_their_splits(task: str, tmp_path: Path) -> None:
    # IOB1: I- opens an entity; B- only where one entity follows another of its type
    _conll(tmp_path / "a.conll", [[("Ada", "I-PER"), ("Bob", "B-PER"), ("ran", "O")]] * 4)
    _conll(tmp_path / "b.iob", [[("at", "O"), ("Kew", "I-LOC")]] * 2)
    params = DataParams(source=str(tmp_path), format="conll",
                        split_files={"a.conll": "train", "b.iob": "test"})  # fmt: skip
    report = gather(source=tmp_path, dst=tmp_path / "g", params=params, task=task)
    assert report.split_from_source
    assert report.rows == {"train": 4, "validation": 0, "test": 2}  # too few to carve from
    train = pd.read_parquet(tmp_path / "g" / "train.parquet")
    test = pd.read_parquet(tmp_path / "g" / "test.parquet")
    assert [list(t) for t in train["tags"]] == [["B-PER", "B-PER", "O"]] * 4
    assert [list(t) for t in test["tags"]] == [["O", "B-LOC"]] * 2


def test_span_files_keep_the_text_and_preprocess_leaves_it(task: str, tmp_path: Path) -> None:
    text = "Going to see Dune 2 at the Alamo  Drafthouse with Sarah"
    spans = [{"start": 13, "end": 19, "label": "work"}, {"start": 27, "end": 44, "label": "loc"},
             {"start": 50, "end": 55, "label": "person"}]  # fmt: skip
    lines = [json.dumps({"text": f"{text} {i}", "spans": spans}) for i in range(20)]
    source = tmp_path / "notes.jsonl"
    source.write_text("\n".join(lines) + "\n")
    report = gather(source=source, dst=tmp_path / "g", params=DataParams(), task=task)
    assert (report.format, report.labels) == ("spans_jsonl", {"loc": 20, "person": 20, "work": 20})
    report = preprocess(src=tmp_path / "g", dst=tmp_path / "p",
                        params=PreprocessParams(lowercase=True), keep_text=True)  # fmt: skip
    assert report.kept_as_written and report.rows["train"] + report.rows["test"] <= 20
    processed = pd.read_parquet(tmp_path / "p" / "train.parquet")
    assert (processed["text"] == processed["raw_text"]).all()
    assert processed["text"].str.startswith(text).all()  # case and double space kept
    inputs, targets = examples(processed, task)
    assert inputs[0][:5] == ["Going", "to", "see", "Dune", "2"]
    assert targets[0][:5] == ["O", "O", "O", "B-work", "I-work"]
    assert target_labels(targets) == ["B-loc", "B-person", "B-work", "I-loc", "I-work", "O"]


def test_a_span_inside_a_token_stops_gather_with_its_text(task: str, tmp_path: Path) -> None:
    source = tmp_path / "bad.jsonl"
    source.write_text(json.dumps({"text": "Dune2 tonight", "spans": [
        {"start": 0, "end": 4, "label": "work"}]}) + "\n")  # fmt: skip
    with pytest.raises(DataSourceError, match="'Dune'"):
        gather(source=source, dst=tmp_path / "g", params=DataParams(), task=task)
    assert not (tmp_path / "g").exists()


def test_params_refuse_what_would_move_the_offsets(task: str) -> None:
    base = {"task": task, "train": {"family": "fake_tagger"}}
    params = parse_params(base)
    assert params.evaluate.main_metric == "entity_f1"  # the task's default
    # classification's default, and params.yaml's: accepted, and not applied to the text
    assert parse_params(base | {"preprocess": {"remove_urls": True}}).preprocess.remove_urls
    refusals = {
        "preprocess: lowercase, stem would change the text": {"preprocess": {"lowercase": True,
                                                                              "stem": True}},
        "train.augment rewrites texts": {"train": {"family": "fake_tagger",
                                                   "augment": {"enabled": True}}},
        "data.format: csv is not read for task": {"data": {"format": "csv"}},
        "evaluate.main_metric: macro_f1 is no metric of task": {"evaluate": {"main_metric":
                                                                             "macro_f1"}},
        "data.label_pattern picks a label": {"data": {"label_pattern": "(x)"}},
    }  # fmt: skip
    for message, change in refusals.items():
        with pytest.raises(ParamsError, match=message.replace(".", r"\.")):
            parse_params(base | change)
    with pytest.raises(ParamsError, match=r"data\.format: conll is not read for task text-class"):
        parse_params({"data": {"format": "conll"}})
    with pytest.raises(ParamsError, match="entity_f1 is no metric of task text-classification"):
        parse_params({"evaluate": {"main_metric": "entity_f1"}})


@pytest.mark.skipif(not WNUT.is_dir(), reason="../shared/datasets/wnut17 is absent")
def test_wnut17_gathers_as_published(task: str, tmp_path: Path) -> None:
    files = {"wnut17train.conll": "train", "emerging.dev.conll": "validation",
             "emerging.test.annotated": "test"}  # fmt: skip
    params = DataParams(source=str(WNUT), split_files=files, format="conll", dedupe="none")
    report = gather(source=WNUT, dst=tmp_path / "g", params=params, task=task)
    assert report.rows == {"train": 3394, "validation": 1009, "test": 1287}
    assert sum(report.labels.values()) == 1975 + 836 + 1079
    assert set(report.labels) == {"corporation", "creative-work", "group", "location",
                                  "person", "product"}  # fmt: skip


def test_the_conll2003_config_reads_its_layout_as_it_is(tmp_path: Path) -> None:
    """configs/conll2003.yaml on files in CoNLL-2003's layout (four columns, -DOCSTART-
    lines, IOB1 tags), here made up: the dataset itself is not among the shared ones."""
    from nlpflow.config.params import load_params

    lines = ["-DOCSTART- -X- -X- O", "", "EU NNP B-NP I-ORG", "rejects VBZ B-VP O",
             "German JJ B-NP I-MISC", "call NN I-NP O", "", "Peter NNP B-NP I-PER",
             "Blackburn NNP I-NP I-PER", ""]  # fmt: skip
    folder = tmp_path / "conll2003"
    folder.mkdir()
    for name in ("train.txt", "valid.txt", "test.txt"):
        (folder / name).write_text("\n".join(lines * 3) + "\n")
    params = load_params(REPO / "params.yaml", configs=[REPO / "configs" / "conll2003.yaml"])
    data = params.data.model_copy(update={"source": str(folder)})
    report = gather(source=folder, dst=tmp_path / "g", params=data, task=params.task)
    assert report.rows == {"train": 6, "validation": 6, "test": 6}
    # IOB1 detected, PER renamed as the config maps it for its base pipeline
    assert report.labels == {"MISC": 9, "ORG": 9, "PERSON": 9}
    train = pd.read_parquet(tmp_path / "g" / "train.parquet")
    assert [list(t) for t in train["tags"]][:2] == [
        ["B-ORG", "O", "B-MISC", "O"],
        ["B-PERSON", "I-PERSON"],
    ]
