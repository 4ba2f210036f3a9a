"""Credentials in URLs: every form is found (params refuse it) and masked (nothing written
carries it), and the three ways params arrive (params.yaml, --config, --set) all refuse it."""

from __future__ import annotations

from pathlib import Path

import pytest

from nlpflow.config.params import DataParams, InferenceParams, Params, load_params
from nlpflow.config.secrets import find_secret, redact, redact_tree, without_secrets
from nlpflow.errors import ParamsError

# (URL with a credential, the credential, the URL to write instead)
LEAKY = [
    ("postgresql://me:Pw1@db/shop", "Pw1", "postgresql://me@db/shop"),
    ("postgresql+psycopg://me:pa/ss@db:5432/shop", "pa/ss", "postgresql+psycopg://me@db:5432/shop"),
    ("postgresql://me:p%40ss@db/shop", "p%40ss", "postgresql://me@db/shop"),
    ("postgresql://me:p@ss@db/shop", "p@ss", "postgresql://me@db/shop"),
    ("postgresql://me:pa ss word@db/shop", "pa ss word", "postgresql://me@db/shop"),
    ("postgresql://me:1234/x@db/shop", "1234/x", "postgresql://me@db/shop"),
    ("postgresql://me@db/shop?password=Pw1&sslmode=require", "Pw1",
     "postgresql://me@db/shop?sslmode=require"),
    ("mysql://me@db/shop?sslmode=x&PWD=Pw1", "Pw1", "mysql://me@db/shop?sslmode=x"),
    ("postgresql://me@db/shop?sslpassword=Pw1", "Pw1", "postgresql://me@db/shop"),
    ("https://me:Pw1@files.example/t.csv", "Pw1", "https://files.example/t.csv"),
    ("https://files.example/t.csv?token=Tk1&v=2", "Tk1", "https://files.example/t.csv?v=2"),
    ("https://files.example/t.csv?Api_Key=Tk1", "Tk1", "https://files.example/t.csv"),
    ("https://ghp_Tk1@github.com/o/r.git", "ghp_Tk1", "https://github.com/o/r.git"),
]  # fmt: skip
CLEAN = [
    "postgresql+psycopg://me@db/shop",
    "postgresql://me@db:5432/shop?sslmode=require",
    "http://127.0.0.1:5000",
    "http://host:5000/models@v1/t.csv",  # a port and an "@" in the path: no password
    "sqlite:///mlflow.db",
    "data/sample/support_tickets.csv",
    "hf:imdb",
    "SELECT * FROM t WHERE note = 'password=x'",  # not a URL
]


@pytest.mark.parametrize(("url", "secret", "fixed"), LEAKY)
def test_every_form_is_found_masked_and_left_out(url: str, secret: str, fixed: str) -> None:
    assert find_secret(url) is not None
    masked = redact(url)
    assert secret not in masked and "***" in masked
    assert without_secrets(url) == fixed


@pytest.mark.parametrize("text", CLEAN)
def test_urls_without_credentials_are_left_alone(text: str) -> None:
    assert find_secret(text) is None
    assert redact(text) == text == without_secrets(text)


def test_redact_finds_urls_inside_text_and_trees() -> None:
    line = "tracking http://h:5000/x; source postgresql://u:Pw1@db/x; mail bob@example.com"
    assert redact(line) == (
        "tracking http://h:5000/x; source postgresql://u:***@db/x; mail bob@example.com"
    )
    tree = {"a": ["https://u:Pw1@h/f", 3], "b": {"c": "x?token=Tk1"}}
    assert redact_tree(tree) == {"a": ["https://u:***@h/f", 3], "b": {"c": "x?token=***"}}


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize("way", ["params.yaml", "--config", "--set"])
def test_params_refuse_a_password_every_way_they_arrive(tmp_path: Path, way: str) -> None:
    url = "postgresql://me:KnownPw/1@127.0.0.1/test"
    params = _write(tmp_path / "params.yaml", "train:\n  epochs: 1\n")
    configs, overrides = [], []
    if way == "params.yaml":
        _write(params, f"data:\n  source: '{url}'\n")
    elif way == "--config":
        configs = [_write(tmp_path / "extra.yaml", f"data:\n  source: '{url}'\n")]
    else:
        overrides = [f"data.source={url}"]
    with pytest.raises(ParamsError) as caught:
        load_params(params, overrides, configs)
    message = str(caught.value)
    assert "KnownPw" not in message
    assert "data.source holds a password; put it in PGPASSWORD, in ~/.pgpass, or in a Prefect " \
        "Secret block (NLPFLOW_DB_SECRET=<block name>) and write the URL without it: " \
        "postgresql://me@127.0.0.1/test" in message  # fmt: skip


@pytest.mark.parametrize(
    "assignment",
    [
        "inference.source=postgresql://me@db/shop?password=KnownPw",
        "inference.output=https://me:KnownPw@h/out.csv",
        "train.pretrained=https://h/enc?token=KnownPw",
        "data.source=https://h/t.csv?token=KnownPw",
    ],
)
def test_any_url_param_is_checked(tmp_path: Path, assignment: str) -> None:
    with pytest.raises(ParamsError) as caught:
        load_params(tmp_path / "params.yaml", [assignment])
    path = assignment.split("=", 1)[0]
    assert f"{path} holds " in str(caught.value) and "KnownPw" not in str(caught.value)


def test_a_database_url_without_password_is_accepted(tmp_path: Path) -> None:
    params = load_params(tmp_path / "params.yaml", ["data.source=postgresql://me@db/shop"])
    assert params.data.source == "postgresql://me@db/shop"


def test_public_dict_masks_what_got_past_validation() -> None:
    """model_construct skips validators: a second guard for Params built in code."""
    data = DataParams.model_construct(source="postgresql://me:pa/ss word@db/shop")
    inference = InferenceParams.model_construct(source="https://h/f.csv?token=Tk1")
    params = Params.model_construct(data=data, inference=inference)
    public = params.public_dict()
    assert public["data"]["source"] == "postgresql://me:***@db/shop"
    assert public["inference"]["source"] == "https://h/f.csv?token=***"


def test_one_engine_builder_reads_postgres_urls_and_keeps_the_password_out_of_strings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from nlpflow.data.sources import build_engine

    monkeypatch.delenv("NLPFLOW_DB_SECRET", raising=False)
    for url in ("postgres://me@db/shop", "postgresql://me@db/shop"):
        engine = build_engine(url, password="Pw-given")
        assert engine.url.drivername == "postgresql+psycopg"
        assert engine.url.password == "Pw-given"
        assert "Pw-given" not in str(engine.url) and "Pw-given" not in repr(engine.url)
    assert build_engine("postgresql://me@db/shop").url.password is None  # libpq looks it up


def test_a_secret_block_named_where_prefect_is_absent_says_what_to_do(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from nlpflow.data import sources
    from nlpflow.errors import DataSourceError

    monkeypatch.setattr(sources, "_password_source", None)  # as in `dvc repro`: no tasks/
    monkeypatch.setenv("NLPFLOW_DB_SECRET", "warehouse")
    with pytest.raises(DataSourceError, match=r"export PGPASSWORD or write ~/\.pgpass"):
        sources.build_engine("postgresql://me@db/shop")


def test_accepted_profile_and_manifest_hold_no_password(tmp_path: Path) -> None:
    from nlpflow.data.gather import gather
    from nlpflow.pipeline.stages import accepted_profile

    plain = accepted_profile(tmp_path, "data/sample/support_tickets.csv")
    assert plain.name.startswith("data_sample_support_tickets_csv-")  # names kept as before
    leaky = accepted_profile(tmp_path, "postgresql://me:KnownPw@db/shop")
    assert "KnownPw" not in leaky.name
    assert leaky == accepted_profile(tmp_path, "postgresql://me:OtherPw@db/shop")

    csv = _write(tmp_path / "t.csv", "text,label\n" + "a b,x\nc d,y\n" * 20)
    # model_copy skips validation, as a Params built in code would
    data = DataParams().model_copy(update={"source": "https://me:KnownPw@h/t.csv?token=KnownPw"})
    gather(source=csv, dst=tmp_path / "gathered", params=data)
    manifest = (tmp_path / "gathered" / "manifest.json").read_text()
    assert "KnownPw" not in manifest and "https://me:***@h/t.csv?token=***" in manifest
