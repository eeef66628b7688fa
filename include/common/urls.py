"""Database URLs: shown without their password, parsed with a clear error, and compared by the
database they reach (two URLs naming one server by different host names are the same database).
"""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass
from functools import cache

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError


def display_url(url: str) -> str:
    """The URL with its password hidden, for messages."""
    return make_url(url).render_as_string(hide_password=True)


def parse_url(url: str, what: str = "the database URL") -> URL:
    """The URL parsed; ValueError naming `what` (never the URL, which may hold a password) if not."""
    try:
        return make_url(url)
    except (ArgumentError, ValueError, TypeError):
        raise ValueError(f"{what} is not a SQLAlchemy database URL (such as sqlite:///path/vault.db or "
                         "postgresql+psycopg2://user@host/database)") from None


_FAMILIES = {"sqlite": "sqlite", "postgresql": "postgresql", "mysql": "mysql", "mariadb": "mysql"}
_DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306}
_THIS_MACHINE = "this machine"


@cache
def _own_addresses() -> frozenset[str]:
    """The addresses this machine's name resolves to: a server reached by them is local too."""
    try:
        return frozenset(str(info[4][0]) for info in socket.getaddrinfo(socket.gethostname(), None))
    except OSError:
        return frozenset()


def _addresses(host: str | None, port: int | None) -> frozenset[str]:
    """Where a server host name leads: its resolved addresses, loopback and this machine's own
    addresses (and a Unix socket) counted as one place; the name itself if it does not resolve."""
    if not host or host.startswith("/"):
        return frozenset({_THIS_MACHINE})
    host = host.strip("[]").lower()
    try:
        found = {ipaddress.ip_address(host).compressed}
    except ValueError:
        try:
            found = {str(info[4][0]) for info in socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)}
        except (OSError, UnicodeError):
            return frozenset({host})
    local = _own_addresses()
    return frozenset(_THIS_MACHINE if ipaddress.ip_address(a.split("%")[0]).is_loopback or a in local else a
                     for a in found)


@dataclass(frozen=True)
class DatabaseIdentity:
    """Which database a URL reaches, whatever it is called: a SQLite file by its real path (and
    inode once it exists); a server's database by resolved address, port and name."""

    family: str  # sqlite, postgresql, mysql, or another backend's name
    name: str | None  # the real path of a SQLite file (None in memory); the database on a server
    port: int | None = None
    hosts: frozenset[str] = frozenset()
    inode: tuple[int, int] | None = None
    host_name: str = ""  # for messages: the host as the URL gives it

    def same_as(self, other: DatabaseIdentity) -> bool:
        if self.family != other.family or self.name is None or other.name is None:
            return False
        if self.family == "sqlite":
            if self.inode is not None and other.inode is not None:
                return self.inode == other.inode
            return self.name == other.name
        return self.port == other.port and self.name == other.name and bool(self.hosts & other.hosts)

    def __str__(self) -> str:
        if self.family == "sqlite":
            return f"the SQLite file {self.name}" if self.name else "an in-memory SQLite database"
        return f"the {self.family} database '{self.name}' at {self.host_name or 'localhost'}:{self.port}"


def database_identity(url: str, *, resolve: bool = True) -> DatabaseIdentity:
    """The identity of the database `url` reaches. resolve=False leaves host names unresolved."""
    parsed = parse_url(url)
    backend = parsed.get_backend_name()
    family = _FAMILIES.get(backend, backend)
    if family == "sqlite":
        database = parsed.database or ""
        if database.startswith("file:"):  # a URI filename (?uri=true)
            database = database.removeprefix("file:").split("?", 1)[0]
        if database in ("", ":memory:") or parsed.query.get("mode") == "memory":
            return DatabaseIdentity("sqlite", None)
        real = os.path.realpath(database)
        try:
            status = os.stat(real)
        except OSError:
            return DatabaseIdentity("sqlite", real)
        return DatabaseIdentity("sqlite", real, inode=(status.st_dev, status.st_ino))
    host = parsed.host or parsed.query.get("host") or None
    if isinstance(host, tuple):
        host = host[0]
    port = parsed.port or _DEFAULT_PORTS.get(family)
    name = parsed.database or (parsed.username if family == "postgresql" else None)
    if family == "mysql" and name:
        name = name.casefold()  # case-blind on some platforms: in doubt, the same
    hosts = _addresses(host, port) if resolve else frozenset({(host or _THIS_MACHINE).lower()})
    return DatabaseIdentity(family, name, port, hosts, host_name=host or "")


def same_database(url_a: str, url_b: str) -> DatabaseIdentity | None:
    """The database both URLs reach, or None when they reach different ones. Host names are
    resolved only when everything else already matches."""
    a, b = database_identity(url_a, resolve=False), database_identity(url_b, resolve=False)
    if a.same_as(b):
        return a
    if a.family == "sqlite" or (a.family, a.port, a.name) != (b.family, b.port, b.name) or a.name is None:
        return None
    a, b = database_identity(url_a), database_identity(url_b)
    return a if a.same_as(b) else None
