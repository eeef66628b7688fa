"""Server-log retention: lines older than a controller's limit lose their IP address, or go.

Logs are in the nginx/Apache combined format, the client address first and the time in brackets:
    203.0.113.9 - - [10/Oct/2026:13:55:36 +0000] "GET / HTTP/1.1" 200 512 "-" "Mozilla/5.0"
Rotated files (access.log.1) and gzipped ones (access.log.2.gz) are handled alike. Anonymising
truncates IPv4 to its /24 and IPv6 to its /48 (a host name, which may name a person's line, becomes
"-"), blanks the identity and authenticated-user fields (often a login name or an email address) to
"- -", and drops the query string of the request and of the referrer (see _REQUEST_QUERY); dropping
removes the line. A file is rewritten beside itself and renamed over the original, so a crash
leaves the old file or the new one, never half of one.

A controller's files are indexed by client address (include/stores/logindex.py): given an index,
a person's search reads only the blocks where their addresses occur, an erasure opens only the files
that hold them, and every file read in full or rewritten gets a fresh index.

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
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from include.common.errors import InvalidInput
from include.common.files import remove_stale_temporaries, replacing
from include.policies.instructions import LogAction
from include.stores.logindex import INDEX_FOLDER, FileState, LogIndex

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


def apply_to_file(path: Path, *, cutoff: datetime, action: str, index: LogIndex | None = None) -> FileOutcome:
    """Anonymise or drop the file's lines older than cutoff; rewrite it only if something changed.
    Given an index, a file read here leaves with a current index."""
    if action not in ACTIONS:
        raise InvalidInput(f"server-log action must be one of {', '.join(ACTIONS)}, got {action!r}")
    outcome = FileOutcome(str(path))
    gz = path.suffix == ".gz"
    builder = index.builder() if index else None
    try:
        first = line_time(_first_line(path))
        if first is not None and first >= cutoff + DISORDER:
            outcome.skipped_young = True
            return outcome
        with replacing(path) as temp:
            sink = gzip.GzipFile(fileobj=temp, mode="wb", mtime=0) if gz else temp
            with _open_log(path) as source, \
                    ThreadPoolExecutor(WORKERS) as pool:
                opened = FileState.of(os.fstat(source.fileno()))
                for _block, (new, changed) in _in_order(
                        pool, lambda b: _process_block(b, cutoff, action), _blocks(source)):
                    outcome.lines_changed += changed
                    outcome.rewritten |= changed > 0
                    sink.write(new)
                    if builder:
                        builder.add(new)
            if gz:
                sink.close()
            if not outcome.rewritten:
                raise _Unchanged
            written = _written(temp)
        if index and builder:
            index.save(path, builder.finish(written))
    except _Unchanged:
        if index and builder and index.current(path) is None:  # what was read is what the file holds
            index.save(path, builder.finish(opened))
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise InvalidInput(f"server log {path} cannot be read: {exc}") from None
    return outcome


def apply_to_hosts(path: Path, hosts: list[str], *, action: str, index: LogIndex | None = None) -> FileOutcome:
    """Anonymise or drop the file's lines whose client address is one of the hosts (a person's, on
    their erasure), whatever their age; rewrite the file atomically only if something changed.

    Given an index that lists no line of the hosts, the file is not opened; a file read here leaves
    with a current index."""
    if action not in ACTIONS:
        raise InvalidInput(f"server-log action must be one of {', '.join(ACTIONS)}, got {action!r}")
    outcome = FileOutcome(str(path))
    if not hosts:
        return outcome
    indexed = index.spans(path, hosts) if index else None
    if indexed is not None and not indexed[1]:
        return outcome
    needles = _needles(hosts)
    gz = path.suffix == ".gz"
    builder = index.builder() if index else None
    try:
        with replacing(path) as temp:
            sink = gzip.GzipFile(fileobj=temp, mode="wb", mtime=0) if gz else temp
            with _open_log(path) as source:
                opened = FileState.of(os.fstat(source.fileno()))
                for block in _blocks(source):
                    data = bytes(block)
                    if found := _host_lines(data, needles):
                        outcome.lines_changed += len(found)
                        data = _erased(data, found, action)
                    sink.write(data)
                    if builder:
                        builder.add(data)
            if gz:
                sink.close()
            if not outcome.lines_changed:
                raise _Unchanged
            written = _written(temp)
        outcome.rewritten = True
        if index and builder:
            index.save(path, builder.finish(written))
    except _Unchanged:
        if index and builder and indexed is None:  # what was read is what the file holds
            index.save(path, builder.finish(opened))
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise InvalidInput(f"server log {path} cannot be read: {exc}") from None
    return outcome


def _written(temp: BinaryIO) -> FileState:
    """The state of a rewritten file as its index records it: renaming it over the original keeps
    its size, modification time and inode."""
    temp.flush()
    return FileState.of(os.fstat(temp.fileno()))


def _erased(data: bytes, found: list[tuple[int, int, str]], action: str) -> bytes:
    """The whole lines of data with the found lines anonymised, or dropped."""
    out, kept_from = [], 0
    for start, stop, _host in found:
        out.append(data[kept_from:start])
        if action == "anonymise":
            out.append(_anonymise_block(data[start:stop])[0])
        kept_from = stop
    out.append(data[kept_from:])
    return b"".join(out)


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


def log_files(directory: Path, pattern: str) -> list[Path]:
    """The log files the pattern names in directory, never an index (a pattern may reach into its folder)."""
    return sorted(p for p in directory.glob(pattern)
                  if p.is_file() and INDEX_FOLDER not in p.relative_to(directory).parts)


def apply_to_directory(directory: Path, pattern: str, *, cutoff: datetime, action: str,
                       index: LogIndex | None = None) -> LocationOutcome:
    """apply_to_file on each log file; given an index, every file then has a current one (the young
    files the rules left unread are read for it), and the indexes of files gone are removed."""
    if not directory.is_dir():
        raise InvalidInput(f"server-log directory {directory} does not exist")
    stale = remove_stale_temporaries(directory)  # a killed run's leftovers; originals are intact
    logs = log_files(directory, pattern)
    files = [apply_to_file(p, cutoff=cutoff, action=action, index=index) for p in logs]
    if index:
        for path in logs:
            if index.current(path) is None:
                index_file(path, index)
        index.prune(directory, logs)
    return LocationOutcome(str(directory), files, stale)


def index_file(path: Path, index: LogIndex) -> None:
    """Read the file in full and write its index."""
    builder = index.builder()
    try:
        with _open_log(path) as source:
            opened = FileState.of(os.fstat(source.fileno()))
            for block in _blocks(source):
                builder.add(block)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise InvalidInput(f"server log {path} cannot be read: {exc}") from None
    index.save(path, builder.finish(opened))


def _needles(hosts: list[str]) -> list[tuple[str, bytes, bytes]]:
    """(host, what a line of it starts with, the same after a newline)."""
    return [(host, host.encode() + b" ", b"\n" + host.encode() + b" ") for host in hosts]


def _host_lines(data: bytes, needles: list[tuple[str, bytes, bytes]]) -> list[tuple[int, int, str]]:
    """(start, stop, host) of each of data's whole lines whose client address is one of the hosts,
    in order; stop is past the line's newline."""
    starts = []
    for host, first, after_newline in needles:
        if data.startswith(first):
            starts.append((0, host))
        at = data.find(after_newline)
        while at != -1:
            starts.append((at + 1, host))
            at = data.find(after_newline, at + 1)
    return [(start, (data.find(b"\n", start) + 1) or len(data), host) for start, host in sorted(starts)]


def _numbered(data: bytes, needles: list[tuple[str, bytes, bytes]],
              lines_before: int) -> Iterator[tuple[int, str, str]]:
    """(line number, host, line) of data's lines of the hosts; data is whole lines after lines_before."""
    number, counted = lines_before + 1, 0
    for start, stop, host in _host_lines(data, needles):
        number += data.count(b"\n", counted, start)
        counted = start
        yield number, host, data[start:stop].removesuffix(b"\n").decode("utf-8", "replace")


def lines_from_hosts(path: Path, hosts: list[str], index: LogIndex | None = None) -> Iterator[tuple[int, str, str]]:
    """(line number, host, line) for each line of the file whose client address is one of the hosts,
    in order; lines are numbered from 1.

    Given an index that is current, only the blocks it lists for the hosts are read (the file is not
    opened if it lists none); otherwise the file is read in full, and given an index, it is rebuilt."""
    if not hosts:
        return
    needles = _needles(hosts)
    indexed = index.spans(path, hosts) if index else None
    if indexed is not None and not indexed[1]:
        return
    try:
        with _open_log(path) as source:
            opened = FileState.of(os.fstat(source.fileno()))
            if indexed is not None and indexed[0].state == opened:
                for span in indexed[1]:
                    source.seek(span.start)
                    yield from _numbered(source.read(span.end - span.start), needles, span.lines_before)
                return
            builder = index.builder() if index else None
            lines = 0
            for block in _blocks(source):
                data = bytes(block)
                yield from _numbered(data, needles, lines)
                lines += data.count(b"\n")
                if builder:
                    builder.add(data)
        if index and builder:
            index.save(path, builder.finish(opened))
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise InvalidInput(f"server log {path} cannot be read: {exc}") from None
