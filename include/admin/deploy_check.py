"""The start-up check of a scale-out component (API server, scheduler, DAG processor, triggerer, Celery
worker), on one machine or many: the settings that must be the same everywhere, and the folders that must be
the same storage everywhere.

`record` runs once where the cluster is initialised: it validates this machine's settings and leaves a
marker in each shared folder (the cluster's id, a salted scrypt digest of each shared setting, the keyring's
fingerprint). `check` runs before each component starts: its settings must be valid and match the markers,
and each of its folders must hold the same cluster's marker, or it names what differs (never a value) and
exits 1. A machine whose work dir is a local folder, or whose JWT secret differs, fails here instead of in
its first task (`request ... has not been planned`, or 403s on the execution API).

Reads the environment only (AIRFLOW__* and GDPR_*); imports no Airflow.
"""

from __future__ import annotations

import argparse
import hashlib
import ipaddress
import json
import os
import secrets
import socket
import sys
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.fernet import Fernet

from include.common.errors import GdprError
from include.common.files import replacing
from include.common.settings import VaultSettings, WorkflowSettings

MARKER = ".gdpr-cluster.json"
MIN_JWT_SECRET_BYTES = 32
# What each shared setting does, for the message when one differs.
SHARED_SETTINGS = {
    "AIRFLOW__API_AUTH__JWT_SECRET": "signs the tokens tasks present to the execution API; a mismatch gives 403s",
    "AIRFLOW__CORE__FERNET_KEY": "encrypts connections and variables in the metadata database",
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": "where every worker's tasks reach the API server",
}


def _setting_problems(env: dict[str, str]) -> list[str]:
    problems = []
    if env.get("AIRFLOW__CORE__EXECUTOR") != "CeleryExecutor":
        problems.append("AIRFLOW__CORE__EXECUTOR must be CeleryExecutor")
    metadata = env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "")
    if not metadata or metadata.startswith("sqlite"):
        problems.append("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN must name a PostgreSQL (or MySQL) database that "
                        "every machine reaches, not SQLite")
    if not env.get("AIRFLOW__CELERY__BROKER_URL"):
        problems.append("AIRFLOW__CELERY__BROKER_URL is not set (e.g. redis://redis-host:6379/0)")
    backend = env.get("AIRFLOW__CELERY__RESULT_BACKEND") or "db+" + metadata
    if backend.startswith("db+") and "+" not in urlsplit(backend[3:]).scheme:
        problems.append("AIRFLOW__CELERY__RESULT_BACKEND (or, unset, the metadata URL) names no database driver: "
                        "SQLAlchemy would load psycopg 3, which is not installed; write db+postgresql+psycopg2://")
    if len(env.get("AIRFLOW__API_AUTH__JWT_SECRET", "").encode()) < MIN_JWT_SECRET_BYTES:
        problems.append(f"AIRFLOW__API_AUTH__JWT_SECRET must be set, at least {MIN_JWT_SECRET_BYTES} bytes, the same "
                        "on every machine (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`)")
    try:
        Fernet(env.get("AIRFLOW__CORE__FERNET_KEY", "").encode())
    except ValueError:
        problems.append("AIRFLOW__CORE__FERNET_KEY must be a Fernet key, the same on every machine (e.g. `python -c "
                        "'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`)")
    api = urlsplit(env.get("AIRFLOW__CORE__EXECUTION_API_SERVER_URL", ""))
    if api.scheme not in ("http", "https") or not api.hostname or not api.path.rstrip("/").endswith("/execution"):
        problems.append("AIRFLOW__CORE__EXECUTION_API_SERVER_URL must be the API server's execution API as every "
                        "machine reaches it, e.g. http://api-host:8080/execution/")
    for name, url in (("GDPR_VAULT_URL", env.get("GDPR_VAULT_URL", "")),
                      ("GDPR_KEYSTORE_URL", env.get("GDPR_KEYSTORE_URL", ""))):
        if not url or url.startswith("sqlite"):
            problems.append(f"{name} must name a server database (PostgreSQL or MariaDB) that every machine "
                            "reaches: SQLite files are not shared safely between machines")
    return problems


def shared_folders() -> dict[str, Path]:
    """{setting: folder} of every folder that all machines must see as the same storage."""
    workflow = WorkflowSettings()
    folders = {"GDPR_WORK_DIR": workflow.work_dir, "GDPR_OUTBOX_DIR": workflow.outbox_dir,
               "GDPR_REPORTS_DIR": workflow.reports_dir, "GDPR_SERVER_LOG_ROOT": workflow.server_log_root,
               "GDPR_DISCLOSURES_INBOX": workflow.disclosures_inbox}
    vault = VaultSettings()
    if not vault.keyring_secret:  # a keyring file is rewritten by each KEK rotation: one copy for all
        folders["GDPR_KEYRING_PATH"] = vault.keyring_path.parent
    if logs := os.environ.get("AIRFLOW__LOGGING__BASE_LOG_FOLDER"):  # workers write, the API server reads
        folders["AIRFLOW__LOGGING__BASE_LOG_FOLDER"] = Path(logs)
    return {name: Path(folder).resolve() for name, folder in folders.items()}


def _digest(cluster: str, name: str, value: str) -> str:
    # Salted and slow: the markers sit on shared storage, and the secrets must not be guessable from them.
    return hashlib.scrypt(value.encode(), salt=f"{cluster}:{name}".encode(), n=2**14, r=8, p=1,
                          dklen=16).hex()


def _fingerprint() -> str | None:
    from include.crypto.keyring import Keyring, load_keyring

    vault = VaultSettings()
    if vault.keyring_secret:
        return Keyring.from_json(vault.keyring_secret, "GDPR_KEYRING_SECRET").fingerprint
    return load_keyring(vault.keyring_path).fingerprint


def _markers(folders: dict[str, Path]) -> dict[str, dict | None]:
    found = {}
    for name, folder in folders.items():
        try:
            found[name] = json.loads((folder / MARKER).read_text())
        except FileNotFoundError:
            found[name] = None
    return found


def _compare(env: dict[str, str], folders: dict[str, Path], markers: dict[str, dict | None], *,
             unmarked_ok: bool = False) -> list[str]:
    present = {name: marker for name, marker in markers.items() if marker}
    if not present:
        return ["no shared folder holds the cluster's marker: initialise the cluster first "
                "(`make init-distributed` on one machine, with the shared storage mounted)"]
    reference_name, reference = next(iter(present.items()))
    problems = []
    for name, marker in markers.items():
        if marker is None and not unmarked_ok:
            problems.append(f"{name} ({folders[name]}) is not the cluster's shared folder (no {MARKER} in it): "
                            "mount the shared storage there, at the same path as on the other machines")
        elif marker and marker["cluster"] != reference["cluster"]:
            problems.append(f"{name} ({folders[name]}) belongs to another cluster than {reference_name} "
                            f"({folders[reference_name]})")
    for name, purpose in SHARED_SETTINGS.items():
        if _digest(reference["cluster"], name, env.get(name, "")) != reference["settings"][name]:
            problems.append(f"{name} differs from the value the cluster was initialised with ({purpose}): "
                            "set the same value on every machine")
    if _fingerprint() != reference["keyring"]:
        problems.append("the keyring differs from the one the cluster was initialised with: every machine must "
                        "read the same keyring (GDPR_KEYRING_PATH on the shared storage, or the same secret)")
    api_host = urlsplit(env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]).hostname or ""
    if _loopback(api_host) and reference["host"] != socket.gethostname():
        problems.append(f"AIRFLOW__CORE__EXECUTION_API_SERVER_URL points at {api_host}, this machine, but the "
                        f"cluster was initialised on {reference['host']}: give the API server's address")
    return problems


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check() -> list[str]:
    """What is wrong with this component's settings and folders; empty when it may start."""
    env = dict(os.environ)
    problems = _setting_problems(env)
    if problems:
        return problems
    folders = shared_folders()
    return _compare(env, folders, _markers(folders))


def record() -> list[str]:
    """Validate the settings and mark the shared folders (creating them); on an initialised cluster, check
    the settings against the markers first and mark only the folders that have none."""
    env = dict(os.environ)
    if problems := _setting_problems(env):
        return problems
    folders = shared_folders()
    markers = _markers(folders)
    if any(markers.values()):
        if problems := _compare(env, folders, markers, unmarked_ok=True):
            return problems
        marker = next(m for m in markers.values() if m)
    else:
        cluster = secrets.token_hex(16)
        marker = {"cluster": cluster, "host": socket.gethostname(), "keyring": _fingerprint(),
                  "settings": {name: _digest(cluster, name, env[name]) for name in SHARED_SETTINGS}}
    for name, folder in folders.items():
        if markers[name] is None:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            with replacing(folder / MARKER, mode=0o600) as handle:
                handle.write(json.dumps(marker, indent=2).encode())
    return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m include.admin.deploy_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["record", "check"])
    parser.add_argument("component", nargs="?", default="this component", help="named in the messages")
    args = parser.parse_args(argv)
    try:
        problems = record() if args.action == "record" else check()
    except (GdprError, ValueError) as exc:  # an unreadable keyring, settings that fail validation
        problems = [str(exc)]
    for problem in problems:
        print(f"error: {args.component}: {problem}", file=sys.stderr)
    if not problems:
        print(f"{args.component}: settings and shared folders {'recorded' if args.action == 'record' else 'match'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
