"""Database errors as the project's: the one place that maps them."""

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import DBAPIError, IntegrityError

from include.common.errors import InvalidInput, StoreUnavailable


@contextmanager
def database_errors(store: str, doing: str, *, advice: str = "") -> Iterator[None]:
    """Within the block, a change the database refuses (a broken constraint) is InvalidInput, as a
    retry gets the same answer; any other database error is StoreUnavailable, retried. The database's
    message may quote a row's values, so only the error's type is passed on.

    store: what the database is, for the message ("store 'x'", "the vault"); doing: what could not be
    done to it ("reached", "searched", "changed"); advice: added to the message of a refused change.
    """
    try:
        yield
    except IntegrityError as exc:
        raise InvalidInput(f"{store} refused the change: it breaks a constraint of the store "
                           f"({type(exc.orig).__name__}); nothing was changed{advice}") from None
    except DBAPIError as exc:
        raise StoreUnavailable(f"{store} cannot be {doing}: {type(exc.orig).__name__}") from None
