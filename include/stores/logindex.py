"""An index of server-log files by client address, so that a person's request reads only the parts
of the files where their addresses occur, not every log the controller keeps.

What it holds. Each log file has one index file, `.gdpr-log-index/<file name>.index` in the log's
own directory (a hidden folder, so that the logs' pattern never takes an index for a log; written
atomically). It records the file as it was read (size, modification time in nanoseconds, inode), the
file cut into blocks of about INDEX_BLOCK_BYTES of whole lines (each block's offset in the content
as read, gunzipped for a .gz file, and the number of lines before it), and for each client address
the file holds, a digest of it and the blocks it occurs in. Its size is a few bytes per address and
block: a fraction of a per cent of the log.

No plain addresses. A digest is the first 8 bytes of the vault's blind index of the address
(`BlindIndexer.digest`: HMAC-SHA256 under a key derived from the keyring, of the normalised address)
for the controller, scoped to server logs (`<controller>/server-logs`), so the digests are neither
the vault's own for that address nor another controller's. Without the keyring, the index file alone
cannot tell whether an address is in the log; it shows only how many distinct addresses each block
holds and how they recur. Cutting the digest to 64 bits costs no line: two addresses with the same
digest only make a block be read for nothing.

Never a miss. An index is used only if the file's size, modification time and inode are still those
it recorded, its checksum holds, and it was made under the current keyring (a digest of a fixed
probe address, which names no one); otherwise the file is read in full, and its index is rebuilt
from what was read. A file is indexed when the retention sweep reads or rewrites it, when an erasure
rewrites it, and when a search finds it without a current index. Hosts that are not IP addresses (a
host name, "-") are not indexed: a person's lines are found by their IP addresses only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from include.common.errors import InvalidInput
from include.common.files import remove_stale_temporaries, write_atomically
from include.crypto.blind_index import BlindIndexer

INDEX_FOLDER = ".gdpr-log-index"
INDEX_SUFFIX = ".index"
INDEX_BLOCK_BYTES = 256 * 2**10  # a person's few lines cost a read of this much each
_MAGIC = b"gdpr server-log index 1\n"
_KNOWN_LIMIT = 2**20  # digests kept for reuse: some 150 MB at most
_PROBE = "0.0.0.0"  # no one's address: its digest tells an index made under another keyring


def index_path(log: Path) -> Path:
    return log.parent / INDEX_FOLDER / (log.name + INDEX_SUFFIX)


class AddressDigests:
    """The keyed digests of client addresses in one controller's server logs."""

    def __init__(self, indexer: BlindIndexer, controller_id: str) -> None:
        self._indexer = indexer
        self._scope = f"{controller_id}/server-logs"
        self._known: dict[bytes, int | None] = {}  # a log repeats its visitors' addresses
        self.key_check = self._digest(_PROBE)

    def _digest(self, address: str) -> int:
        return int(self._indexer.digest("ip", self._scope, address)[:16], 16)

    def of(self, host: bytes) -> int | None:
        """The host's digest, or None if it is not an IP address (never a person's identity here)."""
        try:
            return self._digest(host.decode("ascii"))
        except (UnicodeDecodeError, InvalidInput):
            return None

    def of_each(self, hosts: set[bytes]) -> np.ndarray:
        """The digests of the hosts that are IP addresses, each once."""
        if len(self._known) >= _KNOWN_LIMIT:
            self._known.clear()
        for host in hosts.difference(self._known):  # set operations and map run in C, not per line here
            self._known[host] = self.of(host)
        digests = set(map(self._known.__getitem__, hosts))
        digests.discard(None)
        return np.fromiter(digests, np.uint64, len(digests))


@dataclass(frozen=True)
class FileState:
    """What says a log file is still the one its index was made from."""

    size: int
    mtime_ns: int
    inode: int

    @classmethod
    def of(cls, stat: os.stat_result) -> FileState:
        return cls(stat.st_size, stat.st_mtime_ns, stat.st_ino)


@dataclass(frozen=True)
class Span:
    """Whole lines of a log file, as a byte range of its content (gunzipped for .gz), and how many
    lines come before them."""

    start: int
    end: int
    lines_before: int


@dataclass(frozen=True)
class FileIndex:
    state: FileState
    key_check: int
    starts: np.ndarray  # uint64, one more than the blocks: each block's offset, then the content's end
    lines_before: np.ndarray  # uint64, lines before each block, then the content's lines
    digests: np.ndarray  # uint64, sorted, one per address
    at: np.ndarray  # uint64, one more than the digests: where each address's blocks start in `blocks`
    blocks: np.ndarray  # uint32, each address's blocks, ascending

    def spans(self, digests: Iterable[int]) -> list[Span]:
        """The blocks holding any of the digests, adjacent ones merged, in file order."""
        found: set[int] = set()
        for digest in digests:
            at = int(np.searchsorted(self.digests, np.uint64(digest)))
            if at < len(self.digests) and int(self.digests[at]) == digest:
                found.update(self.blocks[int(self.at[at]):int(self.at[at + 1])].tolist())
        spans: list[Span] = []
        for block in sorted(found):
            if spans and spans[-1].end == int(self.starts[block]):
                spans[-1] = Span(spans[-1].start, int(self.starts[block + 1]), spans[-1].lines_before)
            else:
                spans.append(Span(int(self.starts[block]), int(self.starts[block + 1]),
                                  int(self.lines_before[block])))
        return spans

    def to_bytes(self) -> bytes:
        body = b"".join(array.astype(dtype).tobytes() for array, dtype in (
            (self.starts, "<u8"), (self.lines_before, "<u8"), (self.digests, "<u8"), (self.at, "<u8"),
            (self.blocks, "<u4")))
        header = {"size": self.state.size, "mtime_ns": self.state.mtime_ns, "inode": self.state.inode,
                  "key_check": self.key_check, "blocks": len(self.starts) - 1, "addresses": len(self.digests),
                  "postings": len(self.blocks), "sha256": hashlib.sha256(body).hexdigest()}
        return _MAGIC + json.dumps(header).encode() + b"\n" + body

    @classmethod
    def from_bytes(cls, data: bytes) -> FileIndex | None:
        """The index, or None if it is not one or is damaged (then its file is read in full)."""
        if not data.startswith(_MAGIC):
            return None
        line_end = data.find(b"\n", len(_MAGIC))
        try:
            header = json.loads(data[len(_MAGIC):line_end])
            blocks, addresses, postings = header["blocks"], header["addresses"], header["postings"]
            body = memoryview(data)[line_end + 1:]
            if len(body) != 8 * (2 * (blocks + 1) + 2 * addresses + 1) + 4 * postings \
                    or hashlib.sha256(body).hexdigest() != header["sha256"]:
                return None
            arrays, offset = [], 0
            for count, dtype in ((blocks + 1, "<u8"), (blocks + 1, "<u8"), (addresses, "<u8"),
                                 (addresses + 1, "<u8"), (postings, "<u4")):
                arrays.append(np.frombuffer(body, dtype, count, offset))
                offset += count * np.dtype(dtype).itemsize
            return cls(FileState(header["size"], header["mtime_ns"], header["inode"]), header["key_check"], *arrays)
        except (ValueError, KeyError, TypeError):
            return None


class IndexBuilder:
    """Builds a file's index from its content, fed in order as whole lines."""

    def __init__(self, digests: AddressDigests) -> None:
        self._digests = digests
        self._offset = 0  # bytes fed so far
        self._lines = 0  # lines fed so far
        self._starts = [0]
        self._lines_before = [0]
        self._hosts: set[bytes] = set()  # the open block's hosts, as written
        self._closed: list[np.ndarray] = []  # each closed block's digests

    def add(self, lines: bytes | memoryview) -> None:
        data = bytes(lines)  # no copy if it is bytes already
        if not data:
            return
        codes = np.frombuffer(data, np.uint8)
        ends = np.flatnonzero(codes == 10) + 1
        if data[-1:] != b"\n":
            ends = np.append(ends, len(data))
        starts = np.concatenate(([0], ends[:-1]))
        spaces = np.append(np.flatnonzero(codes == 32), len(data))
        host_ends = spaces[np.searchsorted(spaces, starts)]
        hosted = host_ends < ends  # a line without a space has no client address
        first = 0
        while first < len(starts):
            # A block takes the lines that start within INDEX_BLOCK_BYTES of its own start.
            last = int(np.searchsorted(starts, self._starts[-1] + INDEX_BLOCK_BYTES - self._offset))
            if last == first:  # the open block is full: the next starts at this line
                self._close_block()
                self._starts.append(self._offset + int(starts[first]))
                self._lines_before.append(self._lines + first)
                continue
            keep = hosted[first:last]
            self._hosts.update(map(data.__getitem__, map(slice, starts[first:last][keep].tolist(),
                                                         host_ends[first:last][keep].tolist())))
            first = last
        self._offset += len(data)
        self._lines += len(starts)

    def _close_block(self) -> None:
        self._closed.append(self._digests.of_each(self._hosts))
        self._hosts = set()

    def finish(self, state: FileState) -> FileIndex:
        """The index of what was fed, for the file as it was when opened for reading."""
        self._close_block()
        digests = np.concatenate(self._closed)
        blocks = np.repeat(np.arange(len(self._closed), dtype=np.uint32), [len(d) for d in self._closed])
        order = np.lexsort((blocks, digests))
        digests, blocks = digests[order], blocks[order]
        unique, first = np.unique(digests, return_index=True)
        return FileIndex(state, self._digests.key_check,
                         np.array([*self._starts, self._offset], np.uint64),
                         np.array([*self._lines_before, self._lines], np.uint64),
                         unique, np.append(first, len(digests)).astype(np.uint64), blocks)


class LogIndex:
    """One controller's log indexes: which are current, and writing them."""

    def __init__(self, indexer: BlindIndexer, controller_id: str) -> None:
        self.digests = AddressDigests(indexer, controller_id)

    def spans(self, log: Path, hosts: Iterable[str]) -> tuple[FileIndex, list[Span]] | None:
        """The log's current index and the spans of the hosts' lines in it; None if the file is to be
        read in full: it has no current index, or a host is not an IP address (which no index holds)."""
        digests = [self.digests.of(host.encode()) for host in hosts]
        found = self.current(log)
        if found is None or None in digests:
            return None
        return found, found.spans(d for d in digests if d is not None)

    def current(self, log: Path) -> FileIndex | None:
        """The log's index if it describes the file as it is now, else None (read the file in full)."""
        try:
            state = FileState.of(log.stat())
            found = FileIndex.from_bytes(index_path(log).read_bytes())
        except OSError:
            return None
        if found is None or found.state != state or found.key_check != self.digests.key_check:
            return None
        return found

    def builder(self) -> IndexBuilder:
        return IndexBuilder(self.digests)

    def save(self, log: Path, built: FileIndex) -> None:
        # An index is a shortcut: one that cannot be written (a read-only or full disk) leaves the
        # file to be read in full, as it is without one.
        with contextlib.suppress(OSError):
            write_atomically(index_path(log), built.to_bytes())

    def prune(self, directory: Path, logs: Iterable[Path]) -> None:
        """Remove the indexes of files that are gone (rotated away, deleted), and a killed writer's
        temporaries."""
        folder = Path(directory) / INDEX_FOLDER
        if not folder.is_dir():
            return
        remove_stale_temporaries(folder)
        kept = {index_path(log).name for log in logs}
        for path in folder.glob(f"*{INDEX_SUFFIX}"):
            if path.name not in kept:
                path.unlink(missing_ok=True)
