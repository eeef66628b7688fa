"""Server-log retention: lines older than a controller's limit lose their IP address, or go.

Logs are in the nginx/Apache combined format, the client address first and the time in brackets:
    203.0.113.9 - - [10/Oct/2026:13:55:36 +0000] "GET / HTTP/1.1" 200 512 "-" "Mozilla/5.0"
Rotated files (access.log.1) and gzipped ones (access.log.2.gz) are handled alike. Anonymising
truncates IPv4 to its /24 and IPv6 to its /48 (a host name, which may name a person's line, becomes
"-"), blanks the identity and authenticated-user fields (often a login name or an email address) to
"- -", and drops the query string of the request and of the referrer (see _REQUEST_QUERY); dropping
removes the line. A file is rewritten beside itself and renamed over the original, so a crash
leaves the old file or the new one, never half of one.

Lines are assumed to be in time order give or take a day (servers log a request when it ends). Most
of a file is then handled a block at a time, blocks in parallel, by Arrow's regular expressions;
only blocks that straddle the limit are read line by line. A line whose time cannot be read is
treated as old: when in doubt the address goes.
"""

from __future__ import annotations

import functools
import gzip
import ipaddress
import os
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from include.common.errors import InvalidInput
from include.common.files import remove_stale_temporaries, replacing
from include.policies.instructions import LogAction

BLOCK_BYTES = 8 * 2**20
_PEEK = 4096  # bytes read at a block's ends to find its first and last lines' times
WORKERS = os.cpu_count() or 1  # blocks are anonymised in parallel: Arrow's kernels release the GIL
DISORDER = timedelta(days=1)
MONTHS = {m: i for i, m in enumerate(
    (b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"), 1)}
_TIME = re.compile(rb"\[(\d{2})/([A-Z][a-z]{2})/(\d{4}):(\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})\]")
_IPV4_HOST = re.compile(rb"(?m)^(\d{1,3}\.\d{1,3}\.\d{1,3})\.(?!0 )\d{1,3}(?= )")
_OTHER_HOST = re.compile(rb"(?m)^(?!\d{1,3}\.\d{1,3}\.\d{1,3}\.0 )(?!- )[^ \n]+(?= )")
# The rest of an anonymised line: `host ident authuser [time] "request" status bytes "referer" ...`.
# Everything between the host and the time (ident and authuser, a login name or an email address)
# becomes "- -". The query strings of the request and of the referrer are dropped whole, up to the
# request's protocol or the field's closing quote: a query carries emails, phone numbers, names,
# postcodes and reset tokens, written in any encoding (bob%40example.com, +44%207700...), which a
# pattern for emails and phones would miss; the path, the status and the sizes that the statistics
# of an anonymised log need are kept, and the cut costs one regular expression per field. Quoted
# fields may hold \" (Apache's escape; nginx writes \x22), hence _IN_QUOTES. The same expressions
# run in Python's re and, below, in Arrow's RE2, which agree on them (a property test checks).
_IN_QUOTES = r'(?:[^"\\\n]|\\[^\n])'
_IN_QUOTES_NO_QUERY = r'(?:[^"\\\n?]|\\[^\n])'
_USER_FIELDS = r"^([^ \n]* )[^\[\n]*\["
_REQUEST_QUERY = (rf'^([^"\n]*"[^ "\\\n]* {_IN_QUOTES_NO_QUERY}*)\?{_IN_QUOTES}*?'
                  rf'((?: HTTP/[^ "\\\n]*)?")')
_REFERER_QUERY = rf'^([^"\n]*"{_IN_QUOTES}*" [^ "\n]* [^ "\n]* "{_IN_QUOTES_NO_QUERY}*)\?{_IN_QUOTES}*"'
# _REQUEST_QUERY where the query has no space or backslash, as nearly all have: the same result, and
# one pass of RE2's fast engine (the lazy run in _REQUEST_QUERY is not), so Arrow tries it first.
_PLAIN_REQUEST_QUERY = (rf'^([^"\n]*"[^ "\\\n]* {_IN_QUOTES_NO_QUERY}*)\?[^ "\\\n]*'
                        rf'((?: HTTP/[^ "\\\n]*)?")')
_SCRUB = ((re.compile(("(?m)" + _USER_FIELDS).encode()), rb"\1- - ["),
          (re.compile(("(?m)" + _REQUEST_QUERY).encode()), rb"\1\2"),
          (re.compile(("(?m)" + _REFERER_QUERY).encode()), rb'\1"'))
# The same rules in RE2's syntax, for Arrow. An IPv6 address whose first three groups are written
# in lower case without leading zeros, none of them zero, has "g1:g2:g3::" as its /48: _ARROW_IPV6
# matches those, and _ARROW_IPV6_CUT cuts them there. Both blank the user fields in the same pass
# (so they take lines with a time); a line is done when its host is anonymised and its user fields
# blank, or it has no time.
_ARROW_IPV4 = r"^(\d{1,3}\.\d{1,3}\.\d{1,3})\.\d{1,3} [^\[\n]*\["
_ARROW_IPV4_DONE = r"^(?:\d{1,3}\.\d{1,3}\.\d{1,3}\.0|-) (?:- - \[|[^\[]*$)"
_G = "[1-9a-f][0-9a-f]{0,3}"
_H = "[0-9a-fA-F]{1,4}"
_ARROW_IPV6 = (rf"^({_G}:{_G}:{_G})(?::{_H}:{_H}:{_H}:{_H}:{_H}|::(?:{_H}(?::{_H}){{0,3}})?"
               rf"|:{_H}::(?:{_H}(?::{_H}){{0,2}})?|:{_H}:{_H}::(?:{_H}(?::{_H})?)?|:{_H}:{_H}:{_H}::(?:{_H})?)"
               r" [^\[\n]*\[")
_ARROW_IPV6_CUT = r"^([^: ]+:[^: ]+:[^: ]+:)[^ ]* [^\[\n]*\["
ACTIONS = tuple(LogAction)  # what an instruction may ask of old log lines


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
    """The block with every line anonymised (its host, user fields and query strings), and how many
    lines that changed.

    Line by line in Python's re: for the few lines the bulk path leaves (see _anonymise_lines), and
    the lines of a person's erasure.
    """
    new = _OTHER_HOST.sub(lambda match: anonymise_host(match[0]), _IPV4_HOST.sub(rb"\1.0", block))
    for pattern, replacement in _SCRUB:
        new = pattern.sub(replacement, new)
    if new == block:
        return new, 0
    # No rule adds or removes a newline: the lines pair up.
    return new, sum(old != now for old, now in zip(block.split(b"\n"), new.split(b"\n"), strict=False))


def _lines(block: bytes | memoryview) -> pa.LargeBinaryArray:
    """The block's lines, newlines kept, as an Arrow array over the block's own memory."""
    ends = np.flatnonzero(np.frombuffer(block, np.uint8) == 10) + 1
    if block[-1:] != b"\n":
        ends = np.append(ends, len(block))
    offsets = np.concatenate(([0], ends)).astype(np.int64)
    return pa.LargeBinaryArray.from_buffers(pa.large_binary(), len(ends),
                                            [None, pa.py_buffer(offsets), pa.py_buffer(block)])


def _joined(lines: pa.LargeBinaryArray) -> memoryview:
    offsets = np.frombuffer(lines.buffers()[1], np.int64, count=len(lines) + 1, offset=lines.offset * 8)
    return memoryview(lines.buffers()[2])[offsets[0]:offsets[-1]]


def _anonymise_lines(block: bytes | memoryview) -> tuple[memoryview, int]:
    """_anonymise_block's result, computed by Arrow's RE2 kernels, which release the GIL.

    IPv4 hosts (with their user fields), and IPv6 ones whose /48 is three written non-zero groups,
    are rewritten in bulk; the rest (host names, other IPv6 spellings, lines without a time) go
    through _anonymise_block line by line. Only lines with a "?" (found by one scan of the block's
    bytes) are searched for query strings.
    """
    lines = _lines(block)
    out = pc.replace_substring_regex(lines, pattern=_ARROW_IPV4, replacement=r"\1.0 - - [")
    touched = pc.not_equal(lines, out)
    changed = pc.sum(touched).as_py() or 0
    # An untouched line is done if its host is an anonymised IPv4 address or "-" and its user
    # fields are blank.
    untouched = pc.invert(touched)
    rest = pc.replace_with_mask(untouched, untouched, pc.invert(pc.match_substring_regex(
        pc.filter(out, untouched), pattern=_ARROW_IPV4_DONE)))
    queried = _lines_with_query(block, lines)
    if not (by_line := pc.any(rest).as_py()) and queried is None:
        return _joined(out), changed
    if by_line:
        others = pc.filter(out, rest)
        ipv6 = pc.match_substring_regex(others, pattern=_ARROW_IPV6)
        done = pc.replace_with_mask(others, ipv6, pc.replace_substring_regex(
            pc.filter(others, ipv6), pattern=_ARROW_IPV6_CUT, replacement=r"\1: - - ["))
        if pc.any(by_hand := pc.invert(ipv6)).as_py():
            done = pc.replace_with_mask(done, by_hand, pa.array(
                [_anonymise_block(line)[0] for line in pc.filter(others, by_hand).to_pylist()], pa.large_binary()))
        out = pc.replace_with_mask(out, rest, done)
    if queried is not None:
        asked = pc.filter(out, queried)
        cut = pc.replace_substring_regex(asked, pattern=_PLAIN_REQUEST_QUERY, replacement=r"\1\2")
        if pc.any(uncut := pc.equal(asked, cut)).as_py():
            cut = pc.replace_with_mask(cut, uncut, pc.replace_substring_regex(
                pc.filter(cut, uncut), pattern=_REQUEST_QUERY, replacement=r"\1\2"))
        out = pc.replace_with_mask(out, queried, pc.replace_substring_regex(
            cut, pattern=_REFERER_QUERY, replacement=r'\1"'))
    return _joined(out), pc.sum(pc.not_equal(lines, out)).as_py() or 0


def _lines_with_query(block: bytes | memoryview, lines: pa.LargeBinaryArray) -> pa.BooleanArray | None:
    """Which of the block's lines hold a "?", or None if none does: one vectorised scan of the bytes,
    far cheaper than a search line by line (most lines of most logs have no query string)."""
    marks = np.flatnonzero(np.frombuffer(block, np.uint8) == 63)
    if not len(marks):
        return None
    starts = np.frombuffer(lines.buffers()[1], np.int64, count=len(lines) + 1)
    mask = np.zeros(len(lines), bool)
    mask[np.searchsorted(starts, marks, side="right") - 1] = True
    return pa.array(mask)


@dataclass
class FileOutcome:
    path: str
    lines_changed: int = 0
    rewritten: bool = False
    skipped_young: bool = False


class _Unchanged(Exception):
    """Aborts a rewrite that changed nothing, leaving the file untouched."""


def _blocks(handle) -> Iterator[bytes | memoryview]:
    """The file in blocks of whole lines, without copying them: a block's cut-off last line is
    finished as a small block of its own."""
    while block := handle.read(BLOCK_BYTES):
        whole = block.rfind(b"\n") + 1
        if whole:
            yield memoryview(block)[:whole]
        if whole < len(block):
            yield block[whole:] + handle.readline()


def _in_order(pool: ThreadPoolExecutor, work: Callable, items: Iterable) -> Iterator[tuple]:
    """(item, work(item)) in the items' order, with at most two items per worker read ahead."""
    pending: deque = deque()
    for item in items:
        pending.append((item, pool.submit(work, item)))
        if len(pending) > 2 * WORKERS:
            item, future = pending.popleft()
            yield item, future.result()
    while pending:
        item, future = pending.popleft()
        yield item, future.result()


def _open_log(path: Path):
    """The log file for reading, gunzipped if its name ends in .gz."""
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _first_line(path: Path) -> bytes:
    with _open_log(path) as handle:
        return handle.readline()


def _edge_times(block: bytes | memoryview) -> tuple[datetime | None, datetime | None]:
    """The times of the block's first and last lines (None for a last line too long to find)."""
    head, tail = bytes(block[:_PEEK]), bytes(block[-_PEEK:])
    last_start = tail.rfind(b"\n", 0, len(tail) - 1) + 1
    last = line_time(tail[last_start:]) if last_start or len(block) <= _PEEK else None
    return line_time(head[:head.find(b"\n") + 1 or len(head)]), last


def _process_block(block: bytes | memoryview, cutoff: datetime, action: str) -> tuple[bytes | memoryview, int]:
    first, last = _edge_times(block)
    if first and last and max(first, last) < cutoff - DISORDER:  # all old
        if action == "drop":
            return b"", int(np.count_nonzero(np.frombuffer(block, np.uint8) == 10)) + (block[-1:] != b"\n")
        return _anonymise_lines(block)
    if first and last and min(first, last) >= cutoff + DISORDER:  # all young
        return block, 0
    out, changed = [], 0
    for line in re.findall(rb"[^\n]*\n|[^\n]+$", bytes(block)):
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
            with _open_log(path) as source, \
                    ThreadPoolExecutor(WORKERS) as pool:
                for _block, (new, changed) in _in_order(
                        pool, lambda b: _process_block(b, cutoff, action), _blocks(source)):
                    outcome.lines_changed += changed
                    outcome.rewritten |= changed > 0
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


def apply_to_hosts(path: Path, hosts: list[str], *, action: str) -> FileOutcome:
    """Anonymise or drop the file's lines whose client address is one of the hosts (a person's, on
    their erasure), whatever their age; rewrite the file atomically only if something changed."""
    if action not in ACTIONS:
        raise InvalidInput(f"server-log action must be one of {', '.join(ACTIONS)}, got {action!r}")
    outcome = FileOutcome(str(path))
    if not hosts:
        return outcome
    needles = tuple(host.encode() + b" " for host in hosts)
    gz = path.suffix == ".gz"
    try:
        with replacing(path) as temp:
            sink = gzip.GzipFile(fileobj=temp, mode="wb", mtime=0) if gz else temp
            with _open_log(path) as source:
                for line in source:
                    if not line.startswith(needles):
                        sink.write(line)
                        continue
                    outcome.lines_changed += 1
                    if action == "anonymise":
                        sink.write(_anonymise_block(line)[0])
            if gz:
                sink.close()
            if not outcome.lines_changed:
                raise _Unchanged
        outcome.rewritten = True
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


def lines_from_hosts(path: Path, hosts: list[str]) -> Iterator[tuple[str, str]]:
    """(host, line) for each line of the file whose client address is one of the hosts, in order."""
    if not hosts:
        return
    needles = [(host, b"\n" + host.encode() + b" ") for host in hosts]
    carry = b"\n"  # every line then starts after a newline
    try:
        with _open_log(path) as source:
            while True:
                block = source.read(BLOCK_BYTES)
                data = carry + block
                whole = data.rfind(b"\n") if block else len(data)
                hits = []
                for host, needle in needles:
                    at = data.find(needle, 0, whole)
                    while at != -1:
                        end = data.find(b"\n", at + 1)
                        hits.append((at, host, data[at + 1:end if end != -1 else len(data)]))
                        at = data.find(needle, at + 1, whole)
                for _, host, line in sorted(hits):
                    yield host, line.decode("utf-8", "replace")
                if not block:
                    return
                carry = data[whole:]
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise InvalidInput(f"server log {path} cannot be read: {exc}") from None
