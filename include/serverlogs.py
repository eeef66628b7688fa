"""Server-log retention: lines older than a controller's limit lose their IP address, or go.

Logs are in the nginx/Apache combined format, the client address first and the time in brackets:
    203.0.113.9 - - [10/Oct/2026:13:55:36 +0000] "GET / HTTP/1.1" 200 512 "-" "Mozilla/5.0"
Rotated files (access.log.1) and gzipped ones (access.log.2.gz) are handled alike. Anonymising
truncates IPv4 to its /24 and IPv6 to its /48 (a host name, which may name a person's line, becomes
"-"); dropping removes the line. A file is rewritten beside itself and renamed over the original,
so a crash leaves the old file or the new one, never half of one.

Lines are assumed to be in time order give or take a day (servers log a request when it ends). Most
of a file is then handled a block at a time by regular expressions; only blocks that straddle the
limit are read line by line. A line whose time cannot be read is treated as old: when in doubt the
address goes.
"""

from __future__ import annotations

import functools
import gzip
import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from include.errors import InvalidInput
from include.files import remove_stale_temporaries, replacing

BLOCK_BYTES = 8 * 2**20
DISORDER = timedelta(days=1)
MONTHS = {m: i for i, m in enumerate(
    (b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"), 1)}
_TIME = re.compile(rb"\[(\d{2})/([A-Z][a-z]{2})/(\d{4}):(\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})\]")
_IPV4_HOST = re.compile(rb"(?m)^(\d{1,3}\.\d{1,3}\.\d{1,3})\.(?!0 )\d{1,3}(?= )")
_OTHER_HOST = re.compile(rb"(?m)^(?!\d{1,3}\.\d{1,3}\.\d{1,3}\.0 )(?!- )[^ \n]+(?= )")
ACTIONS = ("anonymise", "drop")


def line_time(line: bytes) -> datetime | None:
    match = _TIME.search(line, 0, 200)
    if not match or match[2] not in MONTHS:
        return None
    day, _mon, year, hour, minute, second, sign, zh, zm = match.groups()
    offset = timedelta(hours=int(zh), minutes=int(zm)) * (1 if sign == b"+" else -1)
    try:
        return datetime(int(year), MONTHS[match[2]], int(day), int(hour), int(minute), int(second),
                        tzinfo=timezone(offset)).astimezone(UTC)
    except ValueError:
        return None


@functools.lru_cache(maxsize=65_536)  # a log repeats its visitors' addresses
def anonymise_host(host: bytes) -> bytes:
    try:
        address = ipaddress.ip_address(host.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return b"-"
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False).network_address).encode()


def _anonymise_block(block: bytes) -> tuple[bytes, int]:
    """The block with every line's host anonymised, and how many lines that changed."""
    block, count = _IPV4_HOST.subn(rb"\1.0", block)
    changed = 0

    def other(match: re.Match) -> bytes:
        nonlocal changed
        new = anonymise_host(match[0])
        changed += new != match[0]
        return new

    return _OTHER_HOST.sub(other, block), count + changed


@dataclass
class FileOutcome:
    path: str
    lines_changed: int = 0
    rewritten: bool = False
    skipped_young: bool = False


class _Unchanged(Exception):
    """Aborts a rewrite that changed nothing, leaving the file untouched."""


def _blocks(handle) -> Iterator[bytes]:
    while block := handle.read(BLOCK_BYTES):
        if not block.endswith(b"\n"):
            block += handle.readline()
        yield block


def _first_line(path: Path) -> bytes:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        return handle.readline()


def _process_block(block: bytes, cutoff: datetime, action: str) -> tuple[bytes, int]:
    first = line_time(block[:block.find(b"\n") + 1 or len(block)])
    last = line_time(block[block.rfind(b"\n", 0, len(block) - 1) + 1:])
    if first and last and max(first, last) < cutoff - DISORDER:  # all old
        if action == "drop":
            return b"", block.count(b"\n") + (not block.endswith(b"\n"))
        return _anonymise_block(block)
    if first and last and min(first, last) >= cutoff + DISORDER:  # all young
        return block, 0
    out, changed = [], 0
    for line in block.splitlines(keepends=True):
        when = line_time(line)
        if when is not None and when >= cutoff:
            out.append(line)
        elif action == "drop":
            changed += 1
        else:
            new, n = _anonymise_block(line)
            out.append(new)
            changed += n
    return b"".join(out), changed


def apply_to_file(path: Path, *, cutoff: datetime, action: str) -> FileOutcome:
    """Anonymise or drop the file's lines older than cutoff; rewrite it only if something changed."""
    if action not in ACTIONS:
        raise InvalidInput(f"server-log action must be one of {', '.join(ACTIONS)}, got {action!r}")
    outcome = FileOutcome(str(path))
    gz = path.suffix == ".gz"
    try:
        first = line_time(_first_line(path))
        if first is not None and first >= cutoff + DISORDER:
            outcome.skipped_young = True
            return outcome
        with replacing(path) as temp:
            sink = gzip.GzipFile(fileobj=temp, mode="wb", mtime=0) if gz else temp
            with (gzip.open(path, "rb") if gz else open(path, "rb")) as source:
                for block in _blocks(source):
                    new, changed = _process_block(block, cutoff, action)
                    outcome.lines_changed += changed
                    if new != block:
                        outcome.rewritten = True
                    sink.write(new)
            if gz:
                sink.close()
            if not outcome.rewritten:
                raise _Unchanged
    except _Unchanged:
        pass
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise InvalidInput(f"server log {path} cannot be read: {exc}") from None
    return outcome


@dataclass
class LocationOutcome:
    directory: str
    files: list[FileOutcome]
    stale_temporaries_removed: int

    @property
    def lines_changed(self) -> int:
        return sum(f.lines_changed for f in self.files)

    @property
    def files_rewritten(self) -> int:
        return sum(f.rewritten for f in self.files)


def apply_to_directory(directory: Path, pattern: str, *, cutoff: datetime, action: str) -> LocationOutcome:
    if not directory.is_dir():
        raise InvalidInput(f"server-log directory {directory} does not exist")
    stale = remove_stale_temporaries(directory)  # a killed run's leftovers; originals are intact
    files = [apply_to_file(p, cutoff=cutoff, action=action)
             for p in sorted(directory.glob(pattern)) if p.is_file()]
    return LocationOutcome(str(directory), files, stale)
