"""The Docker Compose deployment: docker-compose.yaml, Dockerfile and the postgres init script.

Parses the files and checks what the stack relies on: the Airflow services share one image and
environment, the project's code is mounted where PYTHONPATH expects it, the vault connection keeps
the data keys in a different database from the vault, and every dependency can be waited on.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

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
    for name in ("postgres", "redis", "airflow-apiserver", "airflow-scheduler",
                 "airflow-dag-processor", "airflow-worker", "airflow-triggerer", "airflow-init"):
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

    backend = env["AIRFLOW__CELERY__RESULT_BACKEND"]
    assert backend.startswith("db+postgresql://") and "@postgres/" in backend


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


def test_airflow_init_checks_keyring_then_initialises_vault(services: dict) -> None:
    script = services["airflow-init"]["command"][-1]
    assert "/run/secrets/gdpr_keyring" in script
    check = script.index("/run/secrets/gdpr_keyring")
    assert "exit 1" in script[check:script.index("airflow version")], "missing keyring must fail"
    airflow_init = script.index("/entrypoint airflow version")
    vault_init = script.index("/entrypoint python -m include.admin.cli vault init")
    assert check < airflow_init < vault_init


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


def _compose_command() -> list[str] | None:
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        probe = subprocess.run(["docker-compose", "version"], capture_output=True, text=True)
        if probe.returncode == 0 and re.search(r"v?2\.\d", probe.stdout):
            return ["docker-compose"]
    return None


def test_docker_compose_config_is_valid(services: dict) -> None:
    """`config -q` only parses and validates; it needs no Docker engine."""
    command = _compose_command()
    if command is None:
        pytest.skip("Docker Compose v2 is not installed (no `docker compose` plugin, no docker-compose v2)")
    profiles = sorted({p for svc in services.values() for p in svc.get("profiles", [])})
    profile_args = [arg for p in profiles for arg in ("--profile", p)]
    result = subprocess.run(
        [*command, "-f", str(COMPOSE_FILE), *profile_args, "config", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
