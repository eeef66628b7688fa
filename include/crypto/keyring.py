"""The keyring: key-encryption keys (KEKs) that wrap data keys, and the root key.

The root key derives the per-field blind-index keys and the audit-chain key (HKDF, one key per
purpose). KEKs are versioned so that rotation can rewrap data keys while both versions exist.
The file form is JSON created with mode 0600; a keyring readable by others is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import stat
from dataclasses import dataclass, field, replace
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from include.common.errors import KeyringError

FORMAT_VERSION = 1
KEY_BYTES = 32


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: object, where: str) -> bytes:
    try:
        key = base64.b64decode(str(text), validate=True)
    except ValueError as exc:
        raise KeyringError(f"{where} is not valid base64") from exc
    if len(key) != KEY_BYTES:
        raise KeyringError(f"{where} must be {KEY_BYTES} bytes, found {len(key)}")
    return key


@dataclass(frozen=True)
class Keyring:
    root_key: bytes = field(repr=False)
    keks: dict[int, bytes] = field(repr=False)
    active_kek: int
    location: str = "memory"

    @classmethod
    def generate(cls, location: str = "memory") -> Keyring:
        return cls(
            root_key=AESGCM.generate_key(256), keks={1: AESGCM.generate_key(256)}, active_kek=1,
            location=location,
        )

    @property
    def fingerprint(self) -> str:
        """Identifies the keyring without revealing it: the vault records it to refuse others."""
        return hmac.new(self.root_key, b"gdpr-keyring-fingerprint", hashlib.sha256).hexdigest()[:32]

    def derive(self, purpose: str) -> bytes:
        return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None,
                    info=purpose.encode()).derive(self.root_key)

    def kek(self, version: int) -> bytes:
        try:
            return self.keks[version]
        except KeyError:
            raise KeyringError(
                f"keyring at {self.location} has no key-encryption key version {version} "
                f"(it holds {sorted(self.keks)}); was it rotated without rewrapping?"
            ) from None

    def with_new_kek(self) -> Keyring:
        version = max(self.keks) + 1
        return replace(self, keks={**self.keks, version: AESGCM.generate_key(256)}, active_kek=version)

    def without_keks(self, versions: set[int]) -> Keyring:
        """The keyring with those retired KEKs destroyed: whatever is wrapped under them is beyond use."""
        if self.active_kek in versions:
            raise KeyringError(f"the active key-encryption key (version {self.active_kek}) cannot be destroyed")
        return replace(self, keks={v: k for v, k in self.keks.items() if v not in versions})

    def to_json(self) -> str:
        return json.dumps({
            "format": FORMAT_VERSION,
            "root_key": _b64(self.root_key),
            "keks": {str(v): _b64(k) for v, k in sorted(self.keks.items())},
            "active_kek": self.active_kek,
        }, indent=2)

    @classmethod
    def from_json(cls, text: str, location: str) -> Keyring:
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise KeyringError(f"keyring at {location} is not valid JSON "
                               f"(line {getattr(exc, 'lineno', '?')})") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT_VERSION:
            raise KeyringError(f"keyring at {location}: 'format' must be {FORMAT_VERSION}")
        for name in ("root_key", "keks", "active_kek"):
            if name not in doc:
                raise KeyringError(f"keyring at {location}: field '{name}' is missing")
        if not isinstance(doc["keks"], dict) or not doc["keks"]:
            raise KeyringError(f"keyring at {location}: 'keks' must be a non-empty object")
        try:
            keks = {int(v): _unb64(k, f"keyring at {location}: keks.{v}") for v, k in doc["keks"].items()}
        except ValueError:
            raise KeyringError(f"keyring at {location}: 'keks' keys must be integers") from None
        active = doc["active_kek"]
        if active not in keks:
            # A version number is named; any other value is not: in a malformed keyring it may be key material.
            shown = f" {active}" if type(active) is int else " (not a version number)"
            raise KeyringError(f"keyring at {location}: active_kek{shown} is not among keks {sorted(keks)}")
        return cls(root_key=_unb64(doc["root_key"], f"keyring at {location}: root_key"),
                   keks=keks, active_kek=active, location=location)


def load_keyring(path: Path) -> Keyring:
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise KeyringError(
            f"no keyring at {path}: create one with `gdpr-admin keyring init`, "
            "or point GDPR_KEYRING_PATH at the existing one"
        ) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyringError(f"keyring at {path} is accessible by others (mode {stat.S_IMODE(mode):04o}); "
                           "run `chmod 600` on it")
    try:
        text = path.read_text()
    except OSError as exc:
        raise KeyringError(f"keyring at {path} cannot be read: {exc.strerror}") from None
    return Keyring.from_json(text, str(path))


def save_keyring(keyring: Keyring, path: Path) -> None:
    """Write atomically with mode 0600: a crash leaves the old keyring or the new, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(keyring.to_json())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def create_keyring(path: Path) -> Keyring:
    path = Path(path)
    if path.exists():
        raise KeyringError(f"a keyring already exists at {path}; it is kept (use `keyring rotate` for new keys)")
    keyring = Keyring.generate(location=str(path))
    save_keyring(keyring, path)
    return keyring
