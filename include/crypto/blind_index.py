"""Blind indexes: a keyed HMAC of a normalised identity, so a person is found without decrypting.

One key per identity kind, derived from the root key. The controller id is hashed in too, so the
same address held for two controllers gives unrelated digests (no linking across controllers).
"""

from __future__ import annotations

import hashlib
import hmac

from include.common.errors import InvalidInput
from include.common.identities import NORMALISERS
from include.crypto.keyring import Keyring


class BlindIndexer:
    def __init__(self, keyring: Keyring) -> None:
        self._keys = {kind: keyring.derive(f"blind-index/{kind}") for kind in NORMALISERS}

    @staticmethod
    def indexed(field: str) -> bool:
        return field in NORMALISERS

    def digest(self, field: str, controller_id: str, value: object) -> str:
        try:
            key = self._keys[field]
        except KeyError:
            raise InvalidInput(f"'{field}' has no blind index (indexed: {sorted(self._keys)})") from None
        normalised = NORMALISERS[field](value)
        message = controller_id.encode() + b"\x00" + normalised.encode()
        return hmac.digest(key, message, hashlib.sha256).hex()
