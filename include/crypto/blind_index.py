"""Blind indexes: a keyed HMAC of a normalised identity, so a person is found without decrypting.

One key per identity kind, derived from the root key. The controller id is hashed in too, so the
same address held for two controllers gives unrelated digests (no linking across controllers).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

from include.common.errors import InvalidInput
from include.common.identities import NORMALISERS
from include.crypto.keyring import Keyring


class BlindIndexer:
    def __init__(self, keyring: Keyring) -> None:
        self._keys = {kind: keyring.derive(f"blind-index/{kind}") for kind in NORMALISERS}
        # Per (kind, controller): the normaliser, and the HMAC keyed and given the controller id. A
        # digest copies it instead of keying a new HMAC: a bulk ingest computes two per record.
        # Controllers are few, so this is never cleared.
        self._bases: dict[tuple[str, str], tuple[Callable[[object], str], hmac.HMAC]] = {}

    @staticmethod
    def indexed(field: str) -> bool:
        return field in NORMALISERS

    def digest(self, field: str, controller_id: str, value: object) -> str:
        """hex HMAC-SHA256(the field's key, controller id, NUL, the normalised value)."""
        normalise, base = self._bases.get((field, controller_id)) or self._base(field, controller_id)
        mac = base.copy()
        mac.update(normalise(value).encode())
        return mac.hexdigest()

    def _base(self, field: str, controller_id: str) -> tuple[Callable[[object], str], hmac.HMAC]:
        try:
            key = self._keys[field]
        except KeyError:
            raise InvalidInput(f"'{field}' has no blind index (indexed: {sorted(self._keys)})") from None
        base = self._bases[(field, controller_id)] = (
            NORMALISERS[field], hmac.new(key, controller_id.encode() + b"\x00", hashlib.sha256))
        return base
