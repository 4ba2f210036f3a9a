"""Readers of token-classification data into the internal frame, and char spans on tokens.

.venv/bin/pytest -q tests/unit/test_ner_formats.py -p no:cacheprovider
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from nlpflow.data.ner.align import Span, align_spans
from nlpflow.data.ner.formats import (
    from_hf_dataset,
    read_conll,
    read_folder,
    read_label_studio,
    read_spans_jsonl,
)
from nlpflow.data.ner.schemes import spans_of, violations
from nlpflow.errors import DataSourceError

WNUT = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "wnut17"
CONLL2003 = """-DOCSTART- -X- -X- O

EU NNP B-NP I-ORG
rejects VBZ B-VP O
German JJ B-NP I-MISC
call NN I-NP O
. . O O

Peter NNP B-NP I-PER
Blackburn NNP I-NP I-PER
-DOCSTART- -X- -X- O
Rome NNP B-NP I-LOC
Paris NNP I-NP B-LOC
"""  # IOB1, as CoNLL-2003 was published; a DOCSTART with no blank line before it


def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def _entities(frame: pd.DataFrame) -> list[list[tuple[str, str]]]:
    """Each row's entities as (type, text at their character offsets): checks starts too."""
    out = []
    for row in frame.itertuples():
        assert len(row.tokens) == len(row.starts) == len(row.tags)
        assert all(
            row.text[s : s + len(t)] == t for t, s in zip(row.tokens, row.starts, strict=True)
        )
        assert violations(row.tags, "BIO") == []
        found = []
        for start, end, kind in spans_of(row.tags):
            first, last = row.starts[start], row.starts[end - 1] + len(row.tokens[end - 1])
            found.append((kind, row.text[first:last]))
        out.append(found)
    return out


def test_conll2003_layout_iob1_docstart_and_columns(tmp_path: Path) -> None:
    frame = read_conll(_write(tmp_path / "train.txt", CONLL2003))
    assert list(frame.columns) == ["text", "tokens", "starts", "tags", "source_line"]
    assert frame["text"].tolist() == ["EU rejects German call .", "Peter Blackburn", "Rome Paris"]
    assert frame["starts"][0] == [0, 3, 11, 18, 23]
    assert frame["tags"][2] == ["B-LOC", "B-LOC"]  # IOB1's B-: a second LOC right after one
    assert frame["source_line"].tolist() == [3, 9, 12]
    assert _entities(frame) == [
        [("ORG", "EU"), ("MISC", "German")], [("PER", "Peter Blackburn")],
        [("LOC", "Rome"), ("LOC", "Paris")],
    ]  # fmt: skip
    chunks = read_conll(tmp_path / "train.txt", columns=(0, 2), scheme="BIO")
    assert chunks["tags"][0] == ["B-NP", "B-VP", "B-NP", "I-NP", "O"]


def test_tabs_bom_crlf_and_whitespace_only_breaks(tmp_path: Path) -> None:
    text = "\ufeffNew\tB-loc\r\nYork\tI-loc\r\n\t\r\nI\tO\r\nlove\tO\r\n   \r\nit\tO"
    frame = read_conll(_write(tmp_path / "a.conll", text))
    assert frame["tokens"].tolist() == [["New", "York"], ["I", "love"], ["it"]]
    assert frame["source_line"].tolist() == [1, 4, 7]
    assert _entities(frame) == [[("loc", "New York")], [], []]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("EU\tB-ORG\nrejects\n", "a.conll:2: one column ('rejects')"),
        ("EU B-ORG\nrejects O\n\nbad\n", "a.conll:4: one column ('bad')"),
        ("New York\tB-LOC\n", "a.conll:1: the token 'New York' holds a space"),
        ("EU\tB-ORG\nrejects O\n", "a.conll:2: one column"),  # a tab file, then spaces
        (
            "EU NNP B-ORG\nrejects O\n",
            "a.conll:2: 2 columns ['rejects', 'O'], where the lines before have 3",
        ),
        ("\tB-ORG\n", "a.conll:1: the token is empty"),
        ("EU\tB ORG\n", "a.conll:1: the tag 'B ORG' holds a space"),
        ("EU B-ORG\nsays PER\n", "a.conll:2: bad tag 'PER' at token 1"),
        ("A B-X\n\nB I-Y\nC B-Y\n", "a.conll:3: I-Y opening the sentence at token 0"),
        ("A B-X\nB E-X\n\nC B-Y\nD I-Y\n", "a.conll:5: entity Y left open at token 1"),
        ("\n \n", "a.conll is empty"),
        ("-DOCSTART- O\n\n", "no sentences"),
    ],
)
def test_bad_token_files_name_the_line_and_the_fix(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path / "a.conll", text)
    with pytest.raises(DataSourceError, match=re.escape(message)):
        read_conll(path)


def test_mixed_schemes_are_listed_with_their_lines(tmp_path: Path) -> None:
    text = "EU B-ORG\nsays O\n\nin O\nRome I-LOC\n\nand O\nParis I-LOC\n"  # BIO, then IOB1
    with pytest.raises(DataSourceError) as caught:
        read_conll(_write(tmp_path / "a.conll", text))
    message = str(caught.value)
    assert "2 tag(s) break BIO (detected: B- opens entities)" in message
    assert "a.conll:5: I-LOC after O at token 1" in message
    assert "a.conll:8: I-LOC after O at token 1" in message
    assert "pass scheme=" in message
    with pytest.raises(DataSourceError, match=r"a.conll:1: B-ORG opening the sentence"):
        read_conll(tmp_path / "a.conll", scheme="IOB1")  # nor is the file IOB1


def test_an_explicit_scheme_is_checked_and_used(tmp_path: Path) -> None:
    path = _write(tmp_path / "a.conll", "EU I-ORG\nEC B-ORG\n")
    assert read_conll(path, scheme="iob1")["tags"][0] == ["B-ORG", "B-ORG"]
    with pytest.raises(DataSourceError, match=r"a.conll:1: I-ORG opening the sentence"):
        read_conll(path, scheme="BIO")
    with pytest.raises(DataSourceError, match="unknown tag scheme 'BMES'"):
        read_conll(path, scheme="BMES")
    with pytest.raises(DataSourceError, match=r"columns=\(0, 5\)"):
        read_conll(path, columns=(0, 5))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("EU\tO\n".encode("utf-16"), "UTF-16"),
        (b"caf\xe9\tO\n", "a.conll:1: not UTF-8 (byte 0xe9)"),
    ],
)
def test_encodings_other_than_utf8_are_refused(tmp_path: Path, data: bytes, message: str) -> None:
    (tmp_path / "a.conll").write_bytes(data)
    with pytest.raises(DataSourceError, match=re.escape(message)):
        read_conll(tmp_path / "a.conll")


def _jsonl(path: Path, records: list[dict[str, object]], crlf: bool = False) -> Path:
    end = "\r\n" if crlf else "\n"
    return _write(path, "\ufeff" + end.join(json.dumps(r) for r in records) + end)


def test_spans_jsonl_with_spans_entities_and_rejected_answers(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path / "a.jsonl",
        [
            {"text": "I live in New  York.", "spans": [{"start": 10, "end": 19, "label": "GPE"}]},
            {"text": "Apple hired Tim\nCook ", "entities": [[0, 5, "ORG"], [12, 21, "PER"]]},
            {"text": "Nothing here", "spans": [], "answer": "accept"},
            {"text": "Berlin", "spans": [{"start": 0, "end": 3, "label": "X"}], "answer": "reject"},
        ],
        crlf=True,
    )
    frame = read_spans_jsonl(path)
    assert frame["tokens"][0] == ["I", "live", "in", "New", "York", "."]  # no "  " token
    assert frame["starts"][0] == [0, 2, 7, 10, 15, 19]
    assert frame["source_line"].tolist() == [1, 2, 3]
    assert _entities(frame) == [
        [("GPE", "New  York")], [("ORG", "Apple"), ("PER", "Tim\nCook")], [],
    ]  # fmt: skip
    assert frame.attrs["notes"] == [
        f"{path}: left out 1 record(s) answered reject/ignore: lines [4]"
    ]


def test_a_tokenizer_can_be_passed(tmp_path: Path) -> None:
    import spacy

    path = _jsonl(tmp_path / "a.jsonl", [{"text": "Dr. Who", "spans": []}])
    assert read_spans_jsonl(path)["tokens"][0] == ["Dr.", "Who"]  # English exceptions
    assert read_spans_jsonl(path, spacy.blank("xx").tokenizer)["tokens"][0] == ["Dr", ".", "Who"]


def test_bad_spans_are_all_listed_none_dropped(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path / "a.jsonl",
        [
            {"text": "New York rocks", "spans": [{"start": 1, "end": 8, "label": "LOC"}]},
            {"text": "New York rocks", "spans": [[0, 5, "LOC"]]},
            {"text": "New York rocks", "spans": [[0, 8, "LOC"], [4, 14, "ORG"]]},
            {"text": "New York rocks", "spans": [[0, 14, "LOC"], [4, 8, "LOC"]]},
            {"text": "New York rocks", "spans": [[4, 4, "LOC"], [9, 2, "LOC"], [0, 99, "LOC"]]},
            {"text": "New York rocks", "spans": [[0, 3, "LOC"], [0, 3, "LOC"], [3, 4, "X"]]},
            {"text": "New York rocks", "spans": [[0, 3, ""]]},
            {"text": " ", "spans": []},
        ],
    )
    with pytest.raises(DataSourceError) as caught:
        read_spans_jsonl(path)
    message = str(caught.value)
    expected = [
        "a.jsonl:1: span [1, 8) LOC 'ew York' starts inside token 'New' [0, 3)",
        "a.jsonl:2: span [0, 5) LOC 'New Y' ends inside token 'York' [4, 8)",
        "a.jsonl:3: spans [0, 8) LOC 'New York' and [4, 14) ORG 'York rocks' overlap",
        "a.jsonl:4: spans [0, 14) LOC 'New York rocks' and [4, 8) LOC 'York' overlap",
        "a.jsonl:5: span [4, 4) LOC is empty",
        "a.jsonl:5: span [9, 2) LOC ends before it starts",
        "a.jsonl:5: span [0, 99) LOC lies outside the text (length 14)",
        "a.jsonl:6: span [0, 3) LOC 'New' is listed twice",
        "a.jsonl:6: span [3, 4) X ' ' holds only whitespace",
        "a.jsonl:7: span [0, 3) has label '': a label is one word",
    ]
    for line in expected:
        assert line in message, line
    assert "11 span(s) or text(s) cannot be tagged exactly" in message
    assert "and 1 more" in message  # the empty text, past the ten listed


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "a.jsonl:1: not JSON"),
        ('["text"]', "a.jsonl:1: a list, not an object"),
        ('{"text": "x"}', 'a.jsonl:1: no "spans" (or "entities") list'),
        ('{"text": "x", "spans": [], "entities": []}', 'has both "spans" and "entities"'),
        ('{"text": 3, "spans": []}', 'a.jsonl:1: "text" is int, not a string'),
        ('{"text": "x", "spans": [{"start": 0, "label": "X"}]}', 'is not {"start": int'),
        ('{"text": "x", "spans": [["0", 1, "X"]]}', "start and end are character offsets"),
    ],
)
def test_bad_jsonl_records(tmp_path: Path, line: str, message: str) -> None:
    with pytest.raises(DataSourceError, match=re.escape(message)):
        read_spans_jsonl(_write(tmp_path / "a.jsonl", line + "\n"))


def _result(start: int, end: int, text: str, *labels: str) -> dict[str, object]:
    value = {"start": start, "end": end, "text": text, "labels": list(labels)}
    return {"from_name": "label", "to_name": "text", "type": "labels", "value": value}


def _task(ident: int, text: str, *annotations: dict[str, object]) -> dict[str, object]:
    return {"id": ident, "data": {"text": text}, "annotations": list(annotations)}


def test_label_studio_first_annotation_not_cancelled(tmp_path: Path) -> None:
    tasks = [
        _task(
            7,
            "Ada Lovelace wrote notes",
            {"id": 1, "was_cancelled": True, "result": [_result(0, 3, "Ada", "PER")]},
            {"id": 2, "result": [_result(0, 13, "Ada Lovelace ", "PER"), {"type": "relation"}]},
            {"id": 3, "result": []},
        ),
        _task(8, "Nobody yet"),
        _task(9, "Cancelled", {"id": 4, "was_cancelled": True, "result": []}),
        {"id": 10, "data": {"text": "Old export"}, "completions": [{"id": 5, "result": []}]},
    ]
    path = _write(tmp_path / "export.json", json.dumps(tasks))
    frame = read_label_studio(path)
    assert _entities(frame) == [[("PER", "Ada Lovelace")], []]
    assert frame["source_line"].tolist() == [1, 4]
    assert frame.attrs["notes"] == [
        f"{path} task 1 (id 7): used annotation 2, the first not cancelled of 3",
        f"{path} task 2 (id 8): left out, no annotation (none yet)",
        f"{path} task 3 (id 9): left out, no annotation (all 1 cancelled)",
    ]


def test_label_studio_problems(tmp_path: Path) -> None:
    tasks = [
        _task(1, "Paris Hilton", {"result": [_result(0, 12, "Paris Hilton", "PER", "LOC")]}),
        _task(2, "😀 Ada was", {"result": [_result(3, 6, "Ada", "PER")]}),  # UTF-16 offsets
        _task(3, "😀 Ada", {"result": [_result(3, 6, "Ada", "PER")]}),
    ]
    with pytest.raises(DataSourceError) as caught:
        read_label_studio(_write(tmp_path / "export.json", json.dumps(tasks)))
    message = str(caught.value)
    assert (
        "task 1 (id 1): span [0, 12) has labels ['PER', 'LOC']: give each span one label" in message
    )
    assert (
        "task 2 (id 2): span [3, 6) PER says its text is 'Ada' but the text there is 'da '"
        in message
    )
    assert "task 3 (id 3): span [3, 6) PER lies outside the text (length 5)" in message
    assert message.count("may count UTF-16 units") == 2
    for text, expected in [
        ("{}", "not a list of tasks"),
        ("[1, 2", "export.json:1: not JSON"),
        ('[{"data": {"body": "x"}, "annotations": [{"result": []}]}]', "data.text is missing"),
    ]:
        with pytest.raises(DataSourceError, match=re.escape(expected)):
            read_label_studio(_write(tmp_path / "export.json", text))


def test_hugging_face_split_with_class_label_names() -> None:
    from datasets import ClassLabel, Dataset, Features, Sequence, Value

    names = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    features = Features(
        {"tokens": Sequence(Value("string")), "ner_tags": Sequence(ClassLabel(names=names))}
    )
    rows = {"tokens": [["Ada", "Lovelace", "in", "London"], []], "ner_tags": [[1, 2, 0, 3], []]}
    dataset = Dataset.from_dict(rows, features=features)
    frame = from_hf_dataset(dataset)
    assert frame["text"].tolist() == ["Ada Lovelace in London"]
    assert _entities(frame) == [[("PER", "Ada Lovelace"), ("LOC", "London")]]
    assert frame.attrs["notes"] == ["dataset: left out 1 empty record(s): [2]"]
    iob1 = from_hf_dataset([{"tokens": ["A", "B"], "ner_tags": [1, 2]}], ["O", "I-X", "B-X"])
    assert iob1["tags"][0] == ["B-X", "B-X"]
    with pytest.raises(
        DataSourceError, match=re.escape("dataset record 1 (dataset[0]): ner_tags [7]")
    ):
        from_hf_dataset([{"tokens": ["A"], "ner_tags": [7]}], names)
    with pytest.raises(DataSourceError, match="pass label_names"):
        from_hf_dataset([{"tokens": ["A"], "ner_tags": [0]}])
    with pytest.raises(DataSourceError, match="token 'a b' is empty or holds whitespace"):
        from_hf_dataset([{"tokens": ["a b"], "ner_tags": [0]}], names)


def test_folder_of_split_files(tmp_path: Path) -> None:
    _write(tmp_path / "train.conll", "Ada I-PER\nLovelace I-PER\n\nRome I-LOC\n")
    _write(tmp_path / "en-dev.conll", "Paris I-LOC\nLondon B-LOC\n")  # the IOB1 clue is here
    _write(tmp_path / "test.conll", "Bob I-PER\n")
    _write(tmp_path / "README.md", "not data")
    frame = read_folder(tmp_path)
    assert frame["split"].tolist() == ["train", "train", "validation", "test"]
    assert frame["tags"].tolist() == [["B-PER", "I-PER"], ["B-LOC"], ["B-LOC", "B-LOC"], ["B-PER"]]
    spans = tmp_path / "spans"
    spans.mkdir()
    _jsonl(spans / "train.jsonl", [{"text": "Ada", "spans": [[0, 3, "PER"]]}])
    _jsonl(spans / "validation.jsonl", [{"text": "Bob", "spans": []}])
    frame = read_folder(spans)
    assert list(frame.columns) == ["text", "tokens", "starts", "tags", "split", "source_line"]
    assert frame[["split", "text"]].values.tolist() == [["train", "Ada"], ["validation", "Bob"]]


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["train.conll", "dev.jsonl"], "are in different formats"),
        (["train.conll", "labels.txt"], "data files ['labels.txt'] name no one split"),
        (["train.conll", "train-2.conll"], "more than one file for a split"),
        (["notes.md"], "no data files (train, dev/val/validation, test;"),
    ],
)
def test_bad_folders(tmp_path: Path, names: list[str], message: str) -> None:
    for name in names:
        _write(
            tmp_path / name,
            "A O\n" if name.endswith(("conll", "txt")) else '{"text": "A", "spans": []}\n',
        )
    with pytest.raises(DataSourceError, match=re.escape(message)):
        read_folder(tmp_path)


def test_align_spans_direct() -> None:
    tags, problems = align_spans(
        "a New York b", ["a", "New", "York", "b"], [0, 2, 6, 11], [Span(2, 11, "LOC")]
    )
    assert (tags, problems) == (["O", "B-LOC", "I-LOC", "O"], [])
    tags, problems = align_spans("ab", ["ab"], [0], [Span(0, 1, "X")])
    assert tags == ["O"]
    assert problems == [
        "span [0, 1) X 'a' ends inside token 'ab' [0, 2): move its end to a token's start or end, or tokenize so that a token ends there"
    ]


@pytest.mark.skipif(not WNUT.is_dir(), reason=f"WNUT-17 is not at {WNUT} (../shared/datasets)")
@pytest.mark.parametrize(
    ("name", "sentences", "entities"),
    [
        ("wnut17train.conll", 3394, 1975),
        ("emerging.dev.conll", 1009, 836),
        ("emerging.test.annotated", 1287, 1079),
    ],
)
def test_wnut17_counts(name: str, sentences: int, entities: int) -> None:
    frame = read_conll(WNUT / name)
    assert len(frame) == sentences
    assert sum(len(spans_of(tags)) for tags in frame["tags"]) == entities
    if name == "wnut17train.conll":
        assert _entities(frame.head(1)) == [
            [("location", "Empire State Building"), ("location", "ESB")]
        ]
