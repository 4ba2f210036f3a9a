"""validate with token classification's suite (nlpflow.data.suites.token_classification), under
a test-only NLP task (token-classification is not registered yet): the real GX checkpoint on
sentence-per-row Parquet splits, one hostile dataset per check, and WNUT-17 passing the default
suite. Each dataset is validated once per module (GX is slow to start)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from nlpflow.config.nlp_tasks import NLP_TASKS, NlpTask
from nlpflow.config.params import DataParams, ValidateParams
from nlpflow.data.suites.token_classification import build_checks
from nlpflow.data.validation import ValidationReport, validate
from nlpflow.errors import DataValidationError

TASK = "token-classification-suite-test"
WNUT = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "wnut17"
Sentence = dict[str, Any]
Splits = dict[str, list[Sentence]]

PEOPLE = ("Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi")
PLACES = ("Paris", "Rome", "Oslo", "Lima", "Cairo", "Quito", "Bern", "Kyiv")
DEFAULT_IDS = [
    "token_tag_counts", "tag_in_set", "bio_sequence", "token_offsets", "sentence_length",
    "entity_share", "type_min_count", "label_variants", "leak_exact", "leak_normalized",
    "encoding_damage", "type_drift", "length_drift",
]  # fmt: skip


def sentence(pairs: list[tuple[str, str]], line: int = 1) -> Sentence:
    """A sentence of (token, tag) pairs: the tokens joined by single spaces, as gather writes."""
    tokens, tags = [t for t, _ in pairs], [g for _, g in pairs]
    starts = [sum(len(t) + 1 for t in tokens[:i]) for i in range(len(tokens))]
    text = " ".join(tokens)
    return {"text": text, "tokens": tokens, "starts": starts, "tags": tags, "raw_text": text,
            "source_line": line}  # fmt: skip


def words(tagged: str, line: int) -> Sentence:
    """words("Bob/B-PER flew to Rome/B-LOC", 9): tokens split on spaces, each tag after a
    slash (O when none)."""
    return sentence([(w.partition("/")[0], w.partition("/")[2] or "O") for w in tagged.split()],
                    line)  # fmt: skip


def clean() -> Splits:
    """12 train, 4 validation, 4 test sentences; 12 train entities of each of PER and LOC,
    one of them two tokens long; no sentence repeats another; sentence i is on line 8i+1."""
    out: Splits = {}
    for split, verb, n in (("train", "flew", 12), ("validation", "drove", 4), ("test", "ran", 4)):
        out[split] = [words(f"{PEOPLE[i % 8]}/B-PER {verb} to {PLACES[i * 3 % 8]}/B-LOC on day "
                            f"{split}{i}", 8 * i + 1) for i in range(n)]  # fmt: skip
    out["train"][5] = words("Carol/B-PER lives in New/B-LOC York/I-LOC", 41)
    return out


def replaced(rows: dict[tuple[str, int], Sentence]) -> Splits:
    """Clean data with the sentences at (split, index) replaced."""
    data = clean()
    for (split, i), row in rows.items():
        data[split][i] = row
    return data


def untagged(*splits: str) -> Splits:
    """Clean data whose sentences in `splits` hold no entity (every tag O)."""
    data = clean()
    for row in (row for split in splits for row in data[split]):
        row["tags"] = ["O"] * len(row["tags"])
    return data


def _uneven_counts() -> Splits:
    data = clean()
    data["train"][2]["tags"] = data["train"][2]["tags"][:-1]  # a tag short
    data["validation"][1]["starts"] = data["validation"][1]["starts"][:-2]  # offsets short
    return data


def _bad_tokens() -> Splits:
    data = clean()
    data["train"][1]["tokens"][2] = ""  # an empty token: an entity over it would be empty
    data["train"][3]["starts"][3] += 1  # the token is not where its offset says
    # each token is the text at its offset, but "visited" lies inside "Bob visited"
    data["test"][0] = dict(words("Bob/B-PER visited Rome/B-LOC", 1), tokens=["Bob visited", "visited", "Rome"],
                           starts=[0, 4, 12])  # fmt: skip
    return data


def _type_variants() -> Splits:
    data = clean()
    # "Loc" is LOC spelled differently: 7 train entities of it, so only label_variants fails
    for row in [*data["train"][1::2], data["test"][2]]:
        row["tags"] = [t.replace("-LOC", "-Loc") for t in row["tags"]]
    return data


def _drifted() -> Splits:
    """Clean's entities all turned LOC, and every sentence 40 tokens longer."""
    data = clean()
    longer = " ".join(f"x{j}" for j in range(40))
    for split in data.values():
        for i, row in enumerate(split):
            tags = [g.replace("-PER", "-LOC") for g in row["tags"]]
            tagged = " ".join(f"{t}/{g}" for t, g in zip(row["tokens"], tags, strict=True))
            split[i] = words(f"{tagged} {longer}", row["source_line"])
    return data


TRAIN = clean()["train"]
# I-PER after O, and I-LOC right after a PER entity; PER at 0 and LOC at 3 are valid
BAD_SEQUENCE = words("Heidi/B-PER and Max/I-PER Kyiv/B-LOC Bern/I-LOC Lo/B-PER Rome/I-LOC", 57)
RARE_TYPE = {  # two train entities of GAME, and one in test
    ("train", 8): words("Ada/B-PER likes Tetris/B-GAME", 65),
    ("train", 9): words("Tetris/B-GAME is old", 73),
    ("test", 1): words("Doom/B-GAME is loud", 9),
}


@dataclass(frozen=True)
class Case:
    make: Callable[[], Splits]
    params: ValidateParams = field(default_factory=ValidateParams)
    data: DataParams = field(default_factory=DataParams)
    reference_from: str | None = None  # a case whose accepted profile drift is measured on


def bounds(**entities: Any) -> ValidateParams:
    return ValidateParams(entities=entities)


def policy(check_id: str) -> ValidateParams:
    return ValidateParams(policy={check_id: "quarantine"})


CASES: dict[str, Case] = {
    "clean": Case(clean),
    "uneven_counts": Case(_uneven_counts),
    "unknown_type": Case(partial(replaced, {("test", 3): words("Acme/B-ORG hired Bob/B-PER", 25)})),
    "type_outside_labels": Case(clean, data=DataParams(labels=["PER"])),
    "bad_sequence": Case(partial(replaced, {("train", 7): BAD_SEQUENCE})),
    "bad_sequence_quarantined": Case(partial(replaced, {("train", 7): BAD_SEQUENCE}), policy("bio_sequence")),
    "bad_tokens": Case(_bad_tokens),
    "long_sentence": Case(partial(replaced, {("validation", 2): words("Bob/B-PER " + "w " * 30, 17)}),
                          bounds(max_sentence_tokens=20)),
    "few_entities": Case(partial(untagged, "validation", "test"), bounds(min_entity_share=0.7)),
    "rare_type": Case(partial(replaced, RARE_TYPE)),
    "rare_type_quarantined": Case(partial(replaced, RARE_TYPE), policy("type_min_count")),
    "type_variants": Case(_type_variants),
    "leak_exact": Case(partial(replaced, {("test", 1): dict(TRAIN[4], source_line=9)})),
    "leak_normalized": Case(partial(replaced, {("test", 2): words("GRACE/B-PER FLEW TO OSLO/B-LOC ON DAY TRAIN6 !", 17)})),
    "damaged": Case(partial(replaced, {("train", 10): words("Caf\ufffd in Lima/B-LOC", 81)}),
                    ValidateParams(max_damaged_share=0.0)),
    "drifted": Case(_drifted, reference_from="clean"),
    "no_entities": Case(partial(untagged, "train", "validation", "test"), bounds(min_entity_share=0.0)),
    "label_without_train_entity": Case(clean, data=DataParams(labels=["LOC", "PER", "ORG"])),
}  # fmt: skip


@dataclass
class Outcome:
    dst: Path
    accepted: Path
    report: ValidationReport | None
    error: str | None
    summary: dict[str, Any]

    def check(self, check_id: str) -> dict[str, Any]:
        (match,) = [c for c in self.summary["checks"] if c["id"] == check_id]
        return match

    @property
    def failed(self) -> list[str]:
        return [c["id"] for c in self.summary["checks"] if not c["success"]]


Run = Callable[[str], Outcome]


def run_validate(root: Path, splits: dict[str, Any], case: Case, reference: Path) -> Outcome:
    (root / "gathered").mkdir(parents=True)
    for name, rows in splits.items():
        pd.DataFrame(rows).to_parquet(root / "gathered" / f"{name}.parquet", index=False)
    dst, accepted = root / "validation", root / "accepted"
    report, error = None, None
    try:
        report = validate(src=root / "gathered", dst=dst, params=case.params, data=case.data,
                          accepted=accepted, reference=reference, task=TASK)  # fmt: skip
    except DataValidationError as exc:
        error = str(exc)
    summary = json.loads((dst / "summary.json").read_text(encoding="utf-8"))
    return Outcome(dst=dst, accepted=accepted, report=report, error=error, summary=summary)


@pytest.fixture(scope="module")
def task() -> Iterator[str]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(NLP_TASKS, TASK, NlpTask(
            TASK, "test only", data="text_classification", suite="token_classification",
            scoring="text_classification", output="text_classification",
        ))  # fmt: skip
        yield TASK


@pytest.fixture(scope="module")
def outcome(task: str, tmp_path_factory: pytest.TempPathFactory) -> Run:
    cache: dict[str, Outcome] = {}

    def run(name: str) -> Outcome:
        if name not in cache:
            case = CASES[name]
            root = tmp_path_factory.mktemp(name)
            reference = root / "profile.json"
            if case.reference_from is not None:
                source = run(case.reference_from).dst.parent / "profile.json"
                reference.write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
            cache[name] = run_validate(root, case.make(), case, reference)
        return cache[name]

    return run


def failed_only(outcome: Run, name: str, check_id: str, *, also: tuple[str, ...] = ()) -> Any:
    """The result of `check_id`, which `name` failed (with the checks `also` names only)."""
    result = outcome(name)
    assert result.report is None and result.error is not None, f"{name} passed"
    assert sorted(result.failed) == sorted((check_id, *also)), result.error
    assert f"[{check_id}]" in result.error
    assert result.check(check_id)["examples"] or result.check(check_id)["observed"] is not None
    return result.check(check_id)


def accepted_lines(result: Outcome, split: str) -> list[int]:
    return pd.read_parquet(result.accepted / f"{split}.parquet")["source_line"].tolist()


# ---------------------------------------------------------------- clean data and params


def test_clean_sentences_pass_every_check(outcome: Run) -> None:
    result = outcome("clean")
    assert result.error is None and result.report is not None
    assert [c["id"] for c in result.summary["checks"]] == DEFAULT_IDS
    assert result.failed == []
    assert result.report.rows == {"train": 12, "validation": 4, "test": 4}
    assert result.report.allowed_labels == ["LOC", "PER"]
    assert result.report.label_counts["train"] == {"LOC": 12, "PER": 12}
    allowed = "tags are O, or B-/I- of the allowed types ['LOC', 'PER']"
    assert result.check("tag_in_set")["check"] == allowed
    assert result.check("entity_share")["observed"] == 1.0
    profile = json.loads((result.dst.parent / "profile.json").read_text(encoding="utf-8"))
    assert profile["types"] == {"LOC": 0.5, "PER": 0.5}
    assert profile["lengths"] == {"4-7": 1.0}
    assert accepted_lines(result, "train") == [8 * i + 1 for i in range(12)]


def test_policy_accepts_the_entity_checks_and_refuses_quarantine_of_table_checks() -> None:
    params = ValidateParams(policy={"bio_sequence": "quarantine", "token_offsets": "quarantine"})
    assert params.action("bio_sequence") == "quarantine"
    with pytest.raises(ValueError, match="entity_share judges the data as a whole"):
        ValidateParams(policy={"entity_share": "quarantine"})
    with pytest.raises(ValueError, match="min_sentence_tokens must not exceed"):
        ValidateParams(entities={"min_sentence_tokens": 9, "max_sentence_tokens": 8})
    params = ValidateParams(max_length_drift=None, entities={"max_type_drift": None})
    assert [c.id for c in build_checks(params)] == DEFAULT_IDS[:-2]  # null bound: no check


# ---------------------------------------------------------------- one hostile file per check


# (case, the check it fails, the other checks it fails, its offending (split, line)s)
FAILING = [
    ("uneven_counts", "token_tag_counts", (), [("train", 17), ("validation", 9)]),
    # a type without train entities is under type_min_count's minimum too
    ("unknown_type", "tag_in_set", ("type_min_count",), [("test", 25)]),
    ("bad_sequence", "bio_sequence", (), [("train", 57)]),
    ("bad_tokens", "token_offsets", (), [("test", 1), ("train", 9), ("train", 25)]),
    ("long_sentence", "sentence_length", (), [("validation", 17)]),
    ("rare_type", "type_min_count", (), [("test", 9), ("train", 65), ("train", 73)]),
    # an exact copy is a copy up to case and punctuation too
    ("leak_exact", "leak_exact", ("leak_normalized",), [("test", 9)]),
    ("leak_normalized", "leak_normalized", (), [("test", 17)]),
    ("damaged", "encoding_damage", (), [("train", 81)]),
]


@pytest.mark.parametrize(("name", "check_id", "also", "rows"), FAILING, ids=[f[0] for f in FAILING])
def test_each_hostile_file_fails_its_check_on_its_rows(
    outcome: Run, name: str, check_id: str, also: tuple[str, ...], rows: list[tuple[str, int]]
) -> None:
    check = failed_only(outcome, name, check_id, also=also)
    assert sorted((ex["split"], ex["source_row"]) for ex in check["examples"]) == rows
    assert all(f"{split} row {line}: " in (outcome(name).error or "") for split, line in rows)


def test_failed_checks_name_their_bounds_and_show_the_tags(outcome: Run) -> None:
    assert outcome("unknown_type").check("tag_in_set")["examples"][0]["label"] == "B-ORG O B-PER"
    long, rare = outcome("long_sentence"), outcome("rare_type")
    assert long.check("sentence_length")["check"] == "sentences have 1..20 tokens"
    assert rare.check("type_min_count")["check"] == "each entity type has at least 5 train entities"


def test_a_type_data_labels_lacks_fails_tag_in_set(outcome: Run) -> None:
    check = failed_only(outcome, "type_outside_labels", "tag_in_set")
    assert check["check"] == "tags are O, or B-/I- of the allowed types ['PER']"
    assert check["unexpected_count"] == 20  # every sentence holds a LOC


def test_i_after_o_or_another_type_fails_bio_sequence(outcome: Run) -> None:
    check = outcome("bad_sequence").check("bio_sequence")
    assert check["details"]["violations"] == {"7": [
        "I-PER after O at token 2 (BIO opens an entity with B-PER)",
        "I-LOC after B-PER at token 6 (BIO opens an entity with B-LOC)",
    ]}  # fmt: skip


def test_quarantine_of_a_bad_sequence_removes_the_whole_sentence(outcome: Run) -> None:
    result = outcome("bad_sequence_quarantined")
    assert result.error is None and result.report is not None
    assert result.report.quarantined == {"bio_sequence": 1}
    assert result.report.rows == {"train": 11, "validation": 4, "test": 4}
    assert accepted_lines(result, "train") == [8 * i + 1 for i in range(12) if i != 7]
    # its valid entities (Heidi, Kyiv) went with it: 11 of the 12 PER and LOC left
    assert result.report.label_counts["train"] == {"LOC": 11, "PER": 11}
    quarantined = result.dst / "quarantine" / "quarantined.jsonl"
    (moved,) = [json.loads(line) for line in quarantined.read_text(encoding="utf-8").splitlines()]
    assert moved["split"] == "train" and moved["source_row"] == 57
    assert moved["text"] == "Heidi and Max Kyiv Bern Lo Rome"
    assert moved["checks"] == ["bio_sequence"]


def test_too_few_sentences_with_entities_fail(outcome: Run) -> None:
    check = failed_only(outcome, "few_entities", "entity_share")
    assert check["check"] == "at least 70% of sentences hold an entity"
    assert check["observed"] == pytest.approx(12 / 20)  # the train sentences only


def test_quarantine_of_a_rare_type_removes_its_sentences(outcome: Run) -> None:
    result = outcome("rare_type_quarantined")
    assert result.error is None and result.report is not None
    assert result.report.quarantined == {"type_min_count": 3}
    assert result.report.label_counts["train"] == {"LOC": 10, "PER": 10}  # Ada went too
    assert result.report.allowed_labels == ["GAME", "LOC", "PER"]  # as gathered


def test_types_differing_only_in_case_fail(outcome: Run) -> None:
    check = failed_only(outcome, "type_variants", "label_variants")
    assert check["details"] == {"groups": {"LOC": ["Loc"]}, "label_map": {"Loc": "LOC"}}
    assert check["unexpected_count"] == 7
    assert 'data.label_map: {"Loc": "LOC"}' in (outcome("type_variants").error or "")


def test_drift_of_types_and_lengths_fails(outcome: Run) -> None:
    result = outcome("drifted")
    assert result.error is not None
    assert result.failed == ["type_drift", "length_drift"]
    assert result.check("type_drift")["observed"] == 0.5  # PER's half moved to LOC
    assert result.check("length_drift")["observed"] == 1.0  # 4-7 tokens -> 32-63


@pytest.mark.parametrize(("name", "message"), [
    ("no_entities", "the train split holds no entity after validation"),
    ("label_without_train_entity", "data.labels lists entity types ORG, which no train sentence"),
])  # fmt: skip
def test_data_that_passes_the_checks_but_cannot_train_is_refused(
    outcome: Run, name: str, message: str
) -> None:
    result = outcome(name)
    assert result.summary["success"] is True  # every check passed: refused after them
    assert result.error is not None and message in result.error


# ---------------------------------------------------------------- real data


def test_wnut17_passes_the_default_suite(task: str, tmp_path: Path) -> None:
    from nlpflow.data.ner.formats import read_conll

    files = {"train": "wnut17train.conll", "validation": "emerging.dev.conll",
             "test": "emerging.test.annotated"}  # fmt: skip
    if not all((WNUT / name).is_file() for name in files.values()):
        pytest.skip(f"WNUT-17 is not at {WNUT} (shared datasets)")
    splits = {split: read_conll(WNUT / name) for split, name in files.items()}
    result = run_validate(tmp_path, splits, Case(clean), tmp_path / "profile.json")
    assert result.error is None, result.error
    assert result.report is not None
    assert result.report.rows == {"train": 3394, "validation": 1009, "test": 1287}
    assert result.report.label_counts["train"] == {
        "corporation": 221, "creative-work": 140, "group": 264, "location": 548,
        "person": 660, "product": 142,
    }  # fmt: skip
    assert result.report.quarantined_rows == 0
