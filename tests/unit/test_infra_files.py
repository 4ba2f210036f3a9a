"""The team stack's files (infra/): services, their wiring, secrets only in .env, Dockerfile targets.

.venv/bin/pytest tests/unit/test_infra_files.py -q

Docker cannot run containers here, so the compose file is read as YAML with its `${VAR}`s filled
as docker compose fills them: from infra/.env.example with its empty secrets filled in, as a user
does; `docker compose config` runs as well where the docker CLI has the compose plugin.
"""

from __future__ import annotations

import configparser
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

INFRA = Path(__file__).resolve().parents[2] / "infra"
VARIABLE = re.compile(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}")
SECRET_WORDS = ("PASSWORD", "SECRET", "AUTH_STRING")


class Refused(Exception):
    """docker compose's refusal of a `${VAR:?message}` whose VAR is unset or empty."""


def env_example() -> dict[str, str]:
    pairs = (line.split("=", 1) for line in (INFRA / ".env.example").read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#"))  # fmt: skip
    return {key.strip(): value.strip() for key, value in pairs}


def secret_keys() -> list[str]:
    return [k for k in env_example() if any(word in k for word in SECRET_WORDS)]


def filled_env() -> dict[str, str]:
    """infra/.env as a user makes it: every empty secret filled (openssl rand -hex 24)."""
    env = env_example()
    return (
        env
        | {k: f"{k.lower()}-value" for k in secret_keys() if not env[k]}
        | {"PREFECT_AUTH_STRING": "nlpflow:prefect-auth-value"}
    )


def interpolate(text: str, env: dict[str, str]) -> str:
    """`${VAR}`, `${VAR:-default}` and `${VAR:?message}` as docker compose reads them; `$$` is
    a literal `$`."""

    def value(match: re.Match[str]) -> str:
        name, kind, extra = match.groups()
        if kind == ":?" and not env.get(name):
            raise Refused(f"required variable {name} is missing a value: {extra}")
        if kind == ":-" and not env.get(name):
            return extra
        if name in env:
            return env[name]
        raise AssertionError(f"${{{name}}} is used but infra/.env.example does not set it")

    return VARIABLE.sub(value, text.replace("$$", "\0")).replace("\0", "$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    text = interpolate((INFRA / "docker-compose.yml").read_text(), filled_env())
    return dict(yaml.safe_load(text))


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return dict(compose["services"])


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_the_stack_has_every_service(services: dict[str, Any]) -> None:
    assert set(services) == {
        "postgres", "minio", "minio-buckets", "mlflow", "mlflow-users", "prefect-server",
        "prefect-worker", "pipeline",
    }  # fmt: skip


def test_mlflow_keeps_runs_in_postgres_and_artifacts_in_minio(services: dict[str, Any]) -> None:
    env = filled_env()
    mlflow = services["mlflow"]
    command = mlflow["command"]
    backend = urlparse(option(command, "--backend-store-uri"))
    assert backend.scheme == "postgresql+psycopg"
    assert (backend.hostname, backend.port, backend.path) == ("postgres", 5432, "/mlflow")
    assert (backend.username, backend.password) == (env["POSTGRES_USER"], env["POSTGRES_PASSWORD"])
    assert option(command, "--artifacts-destination") == f"s3://{env['MLFLOW_BUCKET']}"
    assert "--serve-artifacts" in command
    assert urlparse(mlflow["environment"]["MLFLOW_S3_ENDPOINT_URL"]).hostname == "minio"
    assert mlflow["environment"]["AWS_SECRET_ACCESS_KEY"] == env["MINIO_PIPELINE_PASSWORD"]
    assert mlflow["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert mlflow["depends_on"]["minio-buckets"]["condition"] == "service_completed_successfully"
    assert mlflow["build"]["target"] == "mlflow-server"


def test_buckets_are_made_before_anyone_writes(services: dict[str, Any]) -> None:
    env = env_example()
    script = " ".join(services["minio-buckets"]["command"])
    assert "mc mb --ignore-existing" in script
    assert "$${MLFLOW_BUCKET}" not in script  # compose unescaped $$ to $: the shell expands it
    for bucket in ("MLFLOW_BUCKET", "DVC_BUCKET"):
        assert f'"minio/${{{bucket}}}"' in script
        assert services["minio-buckets"]["environment"][bucket] == env[bucket]


def test_mlflow_basic_auth_reads_its_config_as_mlflow_does(
    services: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    read_auth_config = _mlflow_auth_config_reader()
    mlflow = services["mlflow"]
    assert option(mlflow["command"], "--app-name") == "basic-auth"
    config_path = mlflow["environment"]["MLFLOW_AUTH_CONFIG_PATH"]
    (mounted,) = [v for v in mlflow["volumes"] if v.split(":")[1] == config_path]
    local = INFRA / mounted.split(":")[0]
    assert local.is_file()
    monkeypatch.setenv("MLFLOW_AUTH_CONFIG_PATH", str(local))
    monkeypatch.setenv("MLFLOW_AUTH_ADMIN_PASSWORD", "from-the-environment")
    config = read_auth_config()
    assert config.admin_password == "from-the-environment"  # none in the file
    assert config.default_permission == "READ"
    # the user store sits on the mlflow-auth volume, not in the container's throw-away layer
    store = Path(config.database_uri.removeprefix("sqlite:///"))
    (volume,) = [v for v in mlflow["volumes"] if v.startswith("mlflow-auth:")]
    assert store.parent == Path(volume.split(":")[1])
    parser = configparser.ConfigParser()
    parser.read(local)
    assert "admin_password" not in parser["mlflow"]


def _mlflow_auth_config_reader() -> Any:
    """MLflow's own reader of the basic-auth file, loaded alone: importing its package starts
    the auth app, which needs Flask-WTF (mlflow[auth], in the server image, not in this venv)."""
    import importlib.util

    import mlflow

    path = Path(mlflow.__file__).parent / "server" / "auth" / "config.py"
    spec = importlib.util.spec_from_file_location("_mlflow_auth_config", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.read_auth_config


def test_mlflow_server_image_can_run_basic_auth() -> None:
    server = (INFRA / "Dockerfile").read_text().split(" AS mlflow-server")[1]
    assert '"mlflow[auth]==${MLFLOW_VERSION}"' in server and "psycopg[binary]" in server
    assert "boto3" in server  # S3 artifacts


def test_prefect_server_runs_on_postgres(services: dict[str, Any]) -> None:
    env = filled_env()
    url = urlparse(services["prefect-server"]["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"])
    assert url.scheme == "postgresql+asyncpg"
    assert (url.hostname, url.port, url.path) == ("postgres", 5432, f"/{env['PREFECT_DB']}")
    assert services["prefect-server"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_postgres_init_script_creates_both_databases_and_pg_trgm(
    services: dict[str, Any],
) -> None:
    postgres = services["postgres"]
    (init,) = [v for v in postgres["volumes"] if "docker-entrypoint-initdb.d" in v]
    script = (INFRA / init.split(":")[0]).read_text()
    assert 'CREATE DATABASE "$MLFLOW_DB"' in script and 'CREATE DATABASE "$PREFECT_DB"' in script
    assert re.search(
        r'--dbname "\$PREFECT_DB" <<SQL\nCREATE EXTENSION IF NOT EXISTS pg_trgm', script
    )
    assert postgres["environment"]["MLFLOW_DB"] == env_example()["MLFLOW_DB"]


def test_worker_and_pipeline_point_at_the_stack(services: dict[str, Any]) -> None:
    from nlpflow.orchestration.deployments import DEFAULT_POOL

    env = filled_env()
    for name in ("prefect-worker", "pipeline"):
        service = services[name]
        wired = service["environment"]
        assert wired["PREFECT_API_URL"] == "http://prefect-server:4200/api"
        assert wired["NLPFLOW_TRACKING_URI"] == "http://mlflow:5000"
        assert wired["MLFLOW_TRACKING_PASSWORD"] == env["MLFLOW_PIPELINE_PASSWORD"]
        assert wired["NLPFLOW_DVC_REMOTE"].startswith(f"s3://{env['DVC_BUCKET']}/")
        assert urlparse(wired["AWS_ENDPOINT_URL_S3"]).hostname == "minio"
        assert service["build"] == {"context": "..", "dockerfile": "infra/Dockerfile",
                                    "target": env["NLPFLOW_TARGET"]}  # fmt: skip
    worker = services["prefect-worker"]["command"]
    assert worker[:2] == ["nlpflow", "worker"] and option(worker, "--pool") == DEFAULT_POOL
    # every host a service calls is a service of the stack, on the port it listens on
    assert {"mlflow", "prefect-server", "minio"} <= set(services)
    assert "--port" in services["mlflow"]["command"]
    assert option(services["mlflow"]["command"], "--port") == "5000"
    assert option(services["prefect-server"]["command"], "--port") == "4200"


def test_secrets_come_from_env_only() -> None:
    env = env_example()
    text = (INFRA / "docker-compose.yml").read_text()
    secrets = secret_keys()
    assert len(secrets) >= 7
    for key in secrets:  # no usable default: a copied file cannot start with a known password
        assert env[key] == "", f"{key} in .env.example must be empty (openssl rand -hex 24)"
        uses = re.findall(rf"(?<!\$)\$\{{{key}(:\?[^}}]*|:-[^}}]*)?\}}", text)  # not $${...}
        assert uses, f"{key} is not used by docker-compose.yml"
        assert all(use == f":?set {key} in infra/.env" for use in uses), (key, uses)
    assert "change-me" not in (INFRA / ".env.example").read_text() + text
    ignored = subprocess.run(["git", "check-ignore", "-q", str(INFRA / ".env")], cwd=INFRA)
    assert ignored.returncode == 0, "infra/.env (the real secrets) must be git-ignored"


def test_dockerfile_has_cpu_cuda_and_mlflow_targets(services: dict[str, Any]) -> None:
    text = (INFRA / "Dockerfile").read_text()
    targets = {name: base for base, name in re.findall(r"^FROM (\S+) AS (\S+)$", text, re.M)}
    assert {"cpu", "cuda", "mlflow-server"} <= set(targets)
    assert targets["cuda"] == "${CUDA_IMAGE}"
    assert re.search(r"^ARG CUDA_IMAGE=nvidia/cuda:\S+$", text, flags=re.M)
    assert re.search(r"^ARG TORCH_VERSION=2\.13\.0$", text, flags=re.M)
    cpu = text.split(" AS cpu")[1].split("\nFROM ")[0]
    cuda = text.split(" AS cuda")[1].split("\nFROM ")[0]
    assert "--index-url https://download.pytorch.org/whl/cpu" in cpu
    assert 'https://download.pytorch.org/whl/${CUDA_WHEELS}"' in cuda
    assert re.search(r"^ARG CUDA_WHEELS=cu\d+$", text, flags=re.M)
    for part in (cpu, cuda):
        assert "torch==${TORCH_VERSION}" in part
        assert "COPY --from=wheel" in part and "COPY --from=project" in part
    built = {s["build"]["target"] for s in services.values() if "build" in s}
    assert built <= set(targets)


def test_dockerfile_copies_only_paths_that_exist() -> None:
    """A COPY of a missing path fails the build; the repository is the build context."""
    root = INFRA.parent
    for line in re.findall(r"^COPY (?!--from)(.+)$", (INFRA / "Dockerfile").read_text(), re.M):
        *sources, _ = line.replace("--chown=nlpflow:nlpflow", "").split()
        for source in sources:
            assert (root / source).exists(), f"COPY {source}: not in the repository"


def test_docker_compose_config_accepts_the_file(tmp_path: Path) -> None:
    docker = shutil.which("docker")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True) if docker else None
    if probe is None or probe.returncode != 0:
        pytest.skip("no docker CLI with the compose plugin here; the YAML checks above still ran")
    done = subprocess.run(
        [docker, "compose", "--env-file", str(INFRA / ".env.example"),
         "-f", str(INFRA / "docker-compose.yml"), "config", "--quiet"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_an_unedited_copy_of_env_example_stops_compose_naming_the_variable() -> None:
    with pytest.raises(Refused, match=r"required variable (\w+) is missing a value: set \1 in"):
        interpolate((INFRA / "docker-compose.yml").read_text(), env_example())
    for key in secret_keys():  # each one alone stops it too
        env = filled_env() | {key: ""}
        with pytest.raises(Refused, match=f"set {key} in infra/.env"):
            interpolate((INFRA / "docker-compose.yml").read_text(), env)


def _published(services: dict[str, Any]) -> dict[str, list[str]]:
    return {name: list(s["ports"]) for name, s in services.items() if s.get("ports")}


def test_every_port_binds_loopback_unless_bind_address_says_otherwise(
    services: dict[str, Any],
) -> None:
    published = _published(services)
    assert set(published) == {"minio", "mlflow", "prefect-server"}
    for name, ports in published.items():
        assert all(p.startswith("127.0.0.1:") and p.count(":") == 2 for p in ports), (name, ports)
    everywhere = interpolate(
        (INFRA / "docker-compose.yml").read_text(), filled_env() | {"BIND_ADDRESS": "0.0.0.0"}
    )
    opened = _published(dict(yaml.safe_load(everywhere)["services"]))
    assert all(p.startswith("0.0.0.0:") for ports in opened.values() for p in ports)
    # the servers listen on every interface of their container; the host side is what binds
    assert option(services["prefect-server"]["command"], "--host") == "0.0.0.0"


def test_prefect_server_requires_the_auth_string_its_clients_send(
    services: dict[str, Any],
) -> None:
    auth = filled_env()["PREFECT_AUTH_STRING"]
    assert services["prefect-server"]["environment"]["PREFECT_SERVER_API_AUTH_STRING"] == auth
    for name in ("prefect-worker", "pipeline"):
        assert services[name]["environment"]["PREFECT_API_AUTH_STRING"] == auth


def test_pipeline_gets_neither_minio_root_nor_mlflow_admin(services: dict[str, Any]) -> None:
    env = filled_env()
    root_holders = {
        n
        for n, s in services.items()
        if env["MINIO_ROOT_PASSWORD"] in json.dumps(s.get("environment", {}))
    }
    admin_holders = {n for n, s in services.items()
                     if env["MLFLOW_AUTH_ADMIN_PASSWORD"] in json.dumps(s.get("environment", {}))}  # fmt: skip
    assert root_holders == {"minio", "minio-buckets"}
    assert admin_holders == {"mlflow", "mlflow-users"}
    for name in ("prefect-worker", "pipeline"):
        wired = services[name]["environment"]
        assert wired["AWS_ACCESS_KEY_ID"] == env["MINIO_PIPELINE_USER"] != env["MINIO_ROOT_USER"]
        assert wired["MLFLOW_TRACKING_USERNAME"] == env["MLFLOW_PIPELINE_USERNAME"]
        assert env["MLFLOW_PIPELINE_USERNAME"] != env["MLFLOW_AUTH_ADMIN_USERNAME"]
        assert services[name]["depends_on"]["mlflow-users"]["condition"] == (
            "service_completed_successfully"
        )


def test_the_minio_user_may_use_the_two_buckets_and_nothing_else(
    services: dict[str, Any],
) -> None:
    env = filled_env()
    one_shot = services["minio-buckets"]
    (mounted,) = [v for v in one_shot["volumes"] if "pipeline-policy.json" in v]
    local, in_container = mounted.split(":")[:2]
    policy = json.loads((INFRA / local).read_text())
    buckets = {env["MLFLOW_BUCKET"], env["DVC_BUCKET"]}
    resources = {r for st in policy["Statement"] for r in st["Resource"]}
    assert resources == {f"arn:aws:s3:::{b}" for b in buckets} | {
        f"arn:aws:s3:::{b}/*" for b in buckets
    }
    actions = {a for st in policy["Statement"] for a in st["Action"]}
    assert all(a.startswith("s3:") and "*" not in a for a in actions)
    assert {st["Effect"] for st in policy["Statement"]} == {"Allow"}
    script = " ".join(one_shot["command"])
    assert f"mc admin policy create minio nlpflow-pipeline {in_container}" in script
    assert 'mc admin user add minio "${MINIO_PIPELINE_USER}" "${MINIO_PIPELINE_PASSWORD}"' in script
    assert 'mc admin policy attach minio nlpflow-pipeline --user "${MINIO_PIPELINE_USER}"' in script


def test_the_mlflow_user_is_made_through_the_rest_api_by_the_admin(
    services: dict[str, Any],
) -> None:
    one_shot = services["mlflow-users"]
    assert one_shot["depends_on"]["mlflow"]["condition"] == "service_healthy"
    (mounted,) = one_shot["volumes"]
    local, in_container = mounted.split(":")[:2]
    assert one_shot["command"] == ["python", in_container]
    script = (INFRA / local).read_text()
    assert "/api/2.0/mlflow/users/create" in script and "update-admin" not in script
    assert one_shot["environment"]["MLFLOW_URL"] == "http://mlflow:5000"


def test_the_readme_recipe_fills_every_secret() -> None:
    readme = (INFRA / "README.md").read_text()
    loop = re.search(r"for key in ([A-Z_ \\\n]+); do", readme)
    assert loop is not None
    filled = set(loop.group(1).replace("\\", " ").split())
    filled |= set(re.findall(r"s/\^(\w+)=\$/", readme)) - {"$key"}
    assert filled == set(secret_keys())
