"""Sealed files: a tar archive of named files encrypted with AES-256-GCM under a fresh key.

The key is stored in the file wrapped by the agency's active KEK (so the keyring opens it, and a KEK
rotation rewraps it with `reseal`), and is also the secret that opens it without the keyring, given
to the controller apart from the file. Access packages, disclosure logs and mailing-list exports
are sealed this way; each is bound to a reference (a request id, or a name for what it holds).
"""

from __future__ import annotations

import base64
import io
import json
import os
import tarfile

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from include.common.errors import InvalidInput, KeyringError
from include.crypto.envelope import NONCE_BYTES, unwrap_data_key, wrap_data_key
from include.crypto.keyring import Keyring

FORMAT = "gdpr-access-package/1"
_MAGIC = b"GDPRPKG1\n"


def _tar(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(files[name]), 0, 0o600
            archive.addfile(info, io.BytesIO(files[name]))
    return buffer.getvalue()


def _wrapping(reference: str, key: bytes, keyring: Keyring) -> dict:
    """The header fields that let the keyring's active KEK open the package key."""
    return {"kek_version": keyring.active_kek, "wrapped_key": base64.b64encode(
        wrap_data_key(keyring.kek(keyring.active_kek), f"package:{reference}", key)).decode()}


def _assembled(header: dict, key: bytes, plain: bytes) -> bytes:
    head = json.dumps(header, sort_keys=True).encode()
    nonce = os.urandom(NONCE_BYTES)
    body = AESGCM(key).encrypt(nonce, plain, head)  # the header is bound to the contents
    return _MAGIC + len(head).to_bytes(4, "big") + head + nonce + body


def seal(files: dict[str, bytes], *, keyring: Keyring, reference: str) -> tuple[bytes, str]:
    """The sealed file and its secret (its key, base64), for the controller."""
    key = AESGCM.generate_key(256)
    # The header names the reference "request", as files sealed before other kinds existed do.
    header = {"format": FORMAT, "request": reference, **_wrapping(reference, key, keyring)}
    return _assembled(header, key, _tar(files)), base64.urlsafe_b64encode(key).decode()


def reseal(sealed: bytes, keyring: Keyring) -> bytes:
    """The same package with its key wrapped under the keyring's active KEK (the secret the
    controller holds still opens it), so that the KEK it was sealed under can be destroyed."""
    head, header, body_at = _parts(sealed)
    key = base64.urlsafe_b64decode(package_secret(sealed, keyring))
    try:
        plain = AESGCM(key).decrypt(sealed[body_at:body_at + NONCE_BYTES], sealed[body_at + NONCE_BYTES:], head)
    except InvalidTag:
        raise KeyringError("the package does not open with this keyring, or was altered") from None
    return _assembled({**header, **_wrapping(header["request"], key, keyring)}, key, plain)


def sealed_kek_version(sealed: bytes) -> int:
    """The version of the KEK a sealed file's key is wrapped under."""
    try:
        return int(_parts(sealed)[1]["kek_version"])
    except (KeyError, TypeError, ValueError):
        raise InvalidInput("not a sealed file (its header names no key-encryption key)") from None


def _parts(sealed: bytes) -> tuple[bytes, dict, int]:
    if not sealed.startswith(_MAGIC):
        raise InvalidInput("not a sealed file (its first bytes are wrong)")
    start = len(_MAGIC) + 4
    size = int.from_bytes(sealed[len(_MAGIC):start], "big")
    head = sealed[start:start + size]
    try:
        return head, json.loads(head), start + size
    except ValueError:
        raise InvalidInput("not a sealed file (its header is not JSON)") from None


def package_secret(sealed: bytes, keyring: Keyring) -> str:
    """The secret that opens the package, for the controller (send it apart from the package)."""
    _, header, _ = _parts(sealed)
    key = unwrap_data_key(keyring.kek(header["kek_version"]), f"package:{header['request']}",
                          base64.b64decode(header["wrapped_key"]))
    return base64.urlsafe_b64encode(key).decode()


def _opening_secret(sealed: bytes, keyring: Keyring | None, secret: str | None) -> str:
    if secret:
        return secret
    if keyring is None:
        raise InvalidInput("opening a package needs the keyring or its secret")
    return package_secret(sealed, keyring)


def open_sealed(sealed: bytes, *, keyring: Keyring | None = None, secret: str | None = None) -> dict[str, bytes]:
    """The package's files, opened with the keyring or with the secret."""
    head, _, body_at = _parts(sealed)
    try:
        key = base64.urlsafe_b64decode(_opening_secret(sealed, keyring, secret).strip())
    except ValueError:
        raise InvalidInput("the secret is not base64") from None
    nonce, body = sealed[body_at:body_at + NONCE_BYTES], sealed[body_at + NONCE_BYTES:]
    try:
        plain = AESGCM(key).decrypt(nonce, body, head)
    except (InvalidTag, ValueError):
        raise KeyringError("the package does not open with this secret or keyring, or was altered") from None
    files = {}
    with tarfile.open(fileobj=io.BytesIO(plain)) as archive:
        for member in archive.getmembers():
            content = archive.extractfile(member)
            if content is None:  # a package holds only files; anything else was not sealed by us
                raise InvalidInput(f"the package holds '{member.name}', which is not a file")
            files[member.name] = content.read()
    return files
