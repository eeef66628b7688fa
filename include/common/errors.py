"""Errors of the core. Messages name what is wrong and where, and never carry personal data.

Each error says whether trying again may help (`retryable`): a store that is away now may be back
in a minute; a wrong keyring, a broken audit chain, bad input or a refusal give the same answer every
time. The workflows' operators and the CLI both decide by it.
"""

from typing import ClassVar


class GdprError(Exception):
    """Base of every error the core raises on purpose."""

    retryable: ClassVar[bool] = False


class KeyringError(GdprError):
    """The keyring is missing, unreadable, malformed or does not belong to the vault."""


class VaultError(GdprError):
    """The vault cannot do what was asked (schema missing, data inconsistent)."""


class DataKeyDestroyed(VaultError):
    """A data subject's data key was destroyed: their records can no longer be decrypted."""


class UnknownRecord(GdprError):
    """No record (or subject, controller) with the given opaque id exists."""


class InvalidInput(GdprError):
    """Input that cannot be accepted; the message says which field and why."""


class AuditError(GdprError):
    """The audit log refused an event, or its chain does not verify."""


class StoreUnavailable(GdprError):
    """A store cannot be reached or read now; a search that needs it must be retried, never cut short."""

    retryable = True


class VaultUnavailable(VaultError, StoreUnavailable):
    """The vault's database or its key store cannot be reached now."""

    retryable = True


class Restricted(GdprError):
    """The data is restricted (Art. 18): it may be stored, and nothing else done with it."""
