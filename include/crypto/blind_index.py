"""Blind indexes: a keyed HMAC of a normalised identity, so a person is found without decrypting.

One key per identity kind, derived from the root key. The controller id is hashed in too, so the
same address held for two controllers gives unrelated digests (no linking across controllers).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from include.common.errors import InvalidInput
from include.common.identities import NORMALISERS
from include.crypto.keyring import Keyring

_BLOCK = hashlib.sha256().block_size


def _padded(key: bytes, pad: int) -> bytes:
    # HMAC (RFC 2104) pads a key no longer than the hash's block; derived keys are 32 bytes.
    assert len(key) <= _BLOCK
    return bytes(b ^ pad for b in key.ljust(_BLOCK, b"\x00"))


class BlindIndexer:
    def __init__(self, keyring: Keyring) -> None:
        self._keys = {kind: keyring.derive(f"blind-index/{kind}") for kind in NORMALISERS}
        # Per (kind, controller): the normaliser and the HMAC's inner hash (its key and the
        # controller id already hashed in) and outer hash (its key). A digest then copies two hash
        # states instead of keying a new HMAC: a bulk ingest computes two per record. Controllers
        # are few, so this is never cleared.
        self._bases: dict[tuple[str, str], tuple[Callable[[object], str], hashlib._Hash, hashlib._Hash]] = {}

    @staticmethod
    def indexed(field: str) -> bool:
        return field in NORMALISERS

    def digest(self, field: str, controller_id: str, value: object) -> str:
        """hex HMAC-SHA256(the field's key, controller id, NUL, the normalised value)."""
        base = self._bases.get((field, controller_id))
        if base is None:
            base = self._base(field, controller_id)
        normalise, inner, outer = base
        inner = inner.copy()
        inner.update(normalise(value).encode())
        outer = outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()

    def _base(self, field: str, controller_id: str) -> tuple[Callable[[object], str], hashlib._Hash, hashlib._Hash]:
        try:
            key = self._keys[field]
        except KeyError:
            raise InvalidInput(f"'{field}' has no blind index (indexed: {sorted(self._keys)})") from None
        inner = hashlib.sha256(_padded(key, 0x36))
        inner.update(controller_id.encode() + b"\x00")
        base = self._bases[(field, controller_id)] = (NORMALISERS[field], inner, hashlib.sha256(_padded(key, 0x5C)))
        return base
