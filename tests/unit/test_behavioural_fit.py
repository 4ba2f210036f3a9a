"""The behavioural file against the data's labels, decided before training: the sample's file
as shipped leaves out its tests that name absent labels (and says so); a user's file that
names absent labels is an error."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from nlpflow.errors import ParamsError
from nlpflow.evaluation.behavioural import (
    SAMPLE_SUITE_SHA256,
    check_fit,
    check_labels,
    load_behavioural,
    run_behavioural,
    suite_digest,
)
from tests.conftest import REPO

SAMPLE = REPO / "behavioural.yaml"
SAMPLE_TESTS = ["typos", "person_names", "punctuation", "double_charge_means_billing",
                "lost_parcel_means_shipping", "canonical_tickets"]  # fmt: skip


def test_the_digest_is_that_of_the_shipped_behavioural_yaml() -> None:
    # behavioural.yaml changed: set SAMPLE_SUITE_SHA256 to the digest printed here
    assert suite_digest(SAMPLE) == SAMPLE_SUITE_SHA256, suite_digest(SAMPLE)
    assert [t.name for t in load_behavioural(SAMPLE).tests] == SAMPLE_TESTS


def test_sample_file_on_other_labels_leaves_out_only_the_tests_naming_them(
    tmp_path: Path,
) -> None:
    copy = tmp_path / "behavioural.yaml"  # comments and layout do not make it the user's
    copy.write_text("# my project\n" + SAMPLE.read_text().replace("  - name:", "\n  - name:"))
    fit = check_fit(copy, ["neg", "pos"])
    assert fit.sample is True
    assert fit.left_out == {
        "double_charge_means_billing": ["billing"],
        "lost_parcel_means_shipping": ["shipping"],
        "canonical_tickets": ["account", "billing", "shipping", "technical"],
    }
    warning = fit.warning() or ""
    assert "is the sample project's behavioural file and does not fit this data's labels" in warning
    assert "double_charge_means_billing (billing)" in warning
    assert "evaluate.behavioural: null" in warning
    check_labels(load_behavioural(copy), ["neg", "pos"], path=copy)  # evaluate's check: no error
    on_sample = check_fit(SAMPLE, ["account", "billing", "shipping", "technical"])
    assert (on_sample.left_out, on_sample.warning()) == ({}, None)


def test_users_own_file_naming_absent_labels_is_refused(tmp_path: Path) -> None:
    mine = tmp_path / "behavioural.yaml"
    mine.write_text(SAMPLE.read_text().replace("label: shipping", "label: shiping"))
    with pytest.raises(ParamsError) as info:
        check_fit(mine, ["account", "billing", "shipping", "technical"])
    message = str(info.value)
    assert "does not fit the data: lost_parcel_means_shipping names shiping" in message
    assert "the data's labels are account, billing, shipping, technical" in message
    assert "Checked before training" in message
    with pytest.raises(ParamsError, match=r"names label\(s\) shiping, which the model does not"):
        check_labels(load_behavioural(mine), ["account", "billing", "shipping"], path=mine)


def test_left_out_tests_do_not_run_and_do_not_count(tmp_path: Path) -> None:
    shutil.copy(SAMPLE, tmp_path / "behavioural.yaml")
    labels = ["neg", "pos"]

    def predict(texts: list[str]) -> tuple[list[str], np.ndarray]:
        # "pos" for every text: the invariance tests pass, whatever they perturb
        return ["pos"] * len(texts), np.tile([0.2, 0.8], (len(texts), 1))

    texts = [f"Hello Anna, my order {i} is late." for i in range(10)]
    report = run_behavioural(
        load_behavioural(tmp_path / "behavioural.yaml"), predict=predict, labels=labels,
        test_texts=texts, test_predicted=["pos"] * len(texts), seed=13,
    )  # fmt: skip
    by_name = {t.name: t for t in report.tests}
    assert by_name["canonical_tickets"].not_run == (
        "names label(s) account, billing, shipping, technical, which the model does not predict"
    )
    assert by_name["double_charge_means_billing"].cases == 0
    assert by_name["double_charge_means_billing"].pass_rate is None
    assert by_name["typos"].not_run is None and by_name["typos"].cases == 10
    assert by_name["person_names"].cases == 10
    assert report.cases == sum(by_name[n].cases for n in ("typos", "person_names", "punctuation"))
    assert report.pass_rate == 1.0
