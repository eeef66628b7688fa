"""The index of server logs by client address: a person's lines are all found through it, in
rotated and gzipped files, after appends and rewrites; it holds no plain address; and a person
with no lines has no log file opened. Real files, the vault's own blind indexer."""

from __future__ import annotations

import base64
import gzip
import ipaddress
import os
import random
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from include.common.paths import DEFAULT_DATAMAPS_DIR
from include.crypto.blind_index import BlindIndexer
from include.crypto.keyring import create_keyring, load_keyring
from include.datamap.model import load_data_map
from include.demo.shop import SHOP_CONTROLLER
from include.duties.retention import sweep_server_logs
from include.policies.instructions import ServerLogLocation
from include.stores.base import Acting
from include.stores.identities import IdentitySet
from include.stores.logindex import INDEX_BLOCK_BYTES, INDEX_FOLDER, LogIndex, index_path
from include.stores.logs import LogStore
from include.stores.serverlogs import apply_to_hosts

pytestmark = pytest.mark.parametrize("backend", ["sqlite"])  # the index is files; the vault only lends its keys

AS_OF = datetime(2026, 11, 24, 3, tzinfo=UTC)  # fenland-cycles keeps 30 days of logs: cut-off 25 October
PERSON = ("198.51.100.23", "2001:db8:5:6::7")
NEIGHBOUR = "198.51.100.2"  # the person's address cut short: neither's lines are the other's
ONLY_IN_ONE_FILE = "192.0.2.77"  # another visitor, seen in access.log.1 alone
NOBODY = ("192.0.2.200", "2001:db8:ffff::1")  # in no file
LINES = 12_000  # about 1.3 MB a file: several index blocks each
# (file, first day, the lines the person's two addresses are on): oldest rotation first.
FILES = (("access.log.2.gz", datetime(2026, 9, 1, tzinfo=UTC), (7, 4_000, 11_999)),
         ("access.log.1", datetime(2026, 10, 1, tzinfo=UTC), (1, 9_000, 9_001)),
         ("access.log", datetime(2026, 11, 1, tzinfo=UTC), (1_000, 11_001)))


def visits(name: str, first_day: datetime, persons_lines: tuple[int, ...]) -> bytes:
    """A month of combined-format lines; line n (from 1) is the person's if n is in persons_lines."""
    rng = random.Random(name)
    lines = []
    for n in range(1, LINES + 1):
        when = first_day + timedelta(seconds=n * 28 * 86_400 // LINES)
        if n in persons_lines:
            host = PERSON[n % 2]
        elif n % 500 == 0:
            host = NEIGHBOUR
        elif n % 700 == 0:
            host = "crawler-7.example.net"  # a host name: never a person's identity here
        elif name == "access.log.1" and n % 1000 == 250:
            host = ONLY_IN_ONE_FILE
        else:
            host = f"10.{rng.randint(0, 3)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
        lines.append(f'{host} - - [{when:%d/%b/%Y:%H:%M:%S} +0000] "GET /shop?item={n} HTTP/1.1" 200 '
                     f'{rng.randint(200, 90_000)} "-" "Mozilla/5.0 (X11; Linux x86_64)"\n')
    return "".join(lines).encode()


def write_logs(root: Path) -> Path:
    directory = root / "fenland-cycles"
    directory.mkdir(parents=True)
    for name, first_day, persons_lines in FILES:
        data = visits(name, first_day, persons_lines)
        (directory / name).write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    return directory


def content(path: Path) -> list[str]:
    data = path.read_bytes()
    return (gzip.decompress(data) if path.suffix == ".gz" else data).decode().splitlines()


def truth(directory: Path, hosts: tuple[str, ...]) -> set[tuple[str, str]]:
    """(key, line) of every line of the hosts, read straight from the files."""
    return {(f"{path.name}:{number}", line) for path in directory.glob("access.log*")
            for number, line in enumerate(content(path), 1) if line.split(" ", 1)[0] in hosts}


def store(root: Path, indexer: BlindIndexer | None) -> LogStore:
    return LogStore(load_data_map(DEFAULT_DATAMAPS_DIR / "fenland-logs.yaml"), root, indexer)


def found(log_store: LogStore, hosts: tuple[str, ...]) -> set[tuple[str, str]]:
    result = log_store.search(IdentitySet.given([("ip", host) for host in hosts]))
    return {(record.key, record.data["line"]) for record in result.records}


# Every open of a log file, however it is made (open, io.open, os.open, gzip, pathlib): Python's
# audit hooks see them all. A hook cannot be removed, so it records only while a test watches.
_watching: list[list[str]] = []


def _record_opens(event: str, args: tuple) -> None:
    if event == "open" and _watching and isinstance(args[0], str | os.PathLike):
        path = Path(os.fspath(args[0]))
        if path.name.startswith("access.log") and INDEX_FOLDER not in path.parts:
            _watching[-1].append(path.name)


sys.addaudithook(_record_opens)


@pytest.fixture
def log_opens():
    """The names of the log files opened while the test runs, in order."""
    opened: list[str] = []
    _watching.append(opened)
    yield opened
    _watching.remove(opened)


def test_every_line_of_a_persons_addresses_is_found_through_the_index_in_rotated_and_gzipped_files(vault, tmp_path):
    directory = write_logs(tmp_path / "logs")
    expected = truth(directory, PERSON)
    assert len(expected) == sum(len(lines) for *_, lines in FILES)
    indexed = store(tmp_path / "logs", vault.indexer)

    assert found(indexed, PERSON) == expected  # no index yet: each file read in full, and indexed
    assert all(indexed.index and indexed.index.current(directory / name) for name, *_ in FILES)
    assert found(indexed, PERSON) == expected  # through the index
    assert found(store(tmp_path / "logs", None), PERSON) == expected  # and as without it
    # Records are keyed by file and line number, from 1.
    for key, line in expected:
        name, number = key.rsplit(":", 1)
        assert content(directory / name)[int(number) - 1] == line
    # The index narrows a file to its blocks: the plain file with the person's two lines far apart
    # is read in two spans of about a block each.
    assert indexed.index is not None
    _, spans = indexed.index.spans(directory / "access.log", PERSON) or (None, [])
    assert len(spans) == 2 and all(span.end - span.start < 2 * INDEX_BLOCK_BYTES for span in spans)
    assert found(indexed, (NEIGHBOUR,)) == truth(directory, (NEIGHBOUR,))


def test_a_file_appended_or_rotated_after_indexing_is_read_in_full_and_indexed_again(vault, tmp_path):
    directory = write_logs(tmp_path / "logs")
    indexed = store(tmp_path / "logs", vault.indexer)
    found(indexed, PERSON)
    assert indexed.index and indexed.index.current(directory / "access.log")

    with (directory / "access.log").open("a") as handle:  # the web server goes on writing
        handle.write(f'{PERSON[0]} - - [24/Nov/2026:01:00:00 +0000] "GET /basket HTTP/1.1" 200 99 "-" "UA"\n')
        handle.write(f'{PERSON[1]} - - [24/Nov/2026:01:00:01 +0000] "GET /pay HTTP/1.1" 200 99 "-" "UA"\n')
    assert indexed.index.current(directory / "access.log") is None
    assert found(indexed, PERSON) == truth(directory, PERSON)
    assert {key for key, _ in truth(directory, PERSON)} >= {f"access.log:{LINES + 1}", f"access.log:{LINES + 2}"}
    assert indexed.index.current(directory / "access.log")

    # logrotate: each file moves one place down, the oldest is dropped, a new access.log begins.
    (directory / "access.log.2.gz").write_bytes(gzip.compress((directory / "access.log.1").read_bytes()))
    (directory / "access.log").rename(directory / "access.log.1")
    (directory / "access.log").write_text(f'{PERSON[0]} - - [24/Nov/2026:02:00:00 +0000] "GET / HTTP/1.1" 200 9 '
                                          '"-" "UA"\n')
    assert found(indexed, PERSON) == truth(directory, PERSON)
    assert found(indexed, PERSON) == truth(directory, PERSON)  # through the new indexes
    assert found(indexed, (ONLY_IN_ONE_FILE,)) == truth(directory, (ONLY_IN_ONE_FILE,)) != set()


def test_a_file_rewritten_by_retention_or_an_erasure_gets_a_fresh_index(demo_vault, tmp_path, log_opens):
    directory = write_logs(tmp_path / "logs")
    indexed = store(tmp_path / "logs", demo_vault.indexer)
    found(indexed, PERSON)
    before = {name: (directory / name).stat().st_ino for name, *_ in FILES}

    report = sweep_server_logs(demo_vault, controller_id=SHOP_CONTROLLER,
                               locations=[ServerLogLocation(directory="fenland-cycles")],
                               log_root=tmp_path / "logs", as_of=AS_OF, actor="test")
    assert report.cutoff == "2026-10-25T00:00:00+00:00" and report.locations[0]["files_rewritten"] == 2
    rewritten = [name for name, inode in before.items() if (directory / name).stat().st_ino != inode]
    assert sorted(rewritten) == ["access.log.1", "access.log.2.gz"]
    assert all(indexed.index and indexed.index.current(directory / name) for name in before)
    # The old lines lost the person's addresses; the index knows it, and finds the young ones.
    remaining = truth(directory, PERSON)
    assert {key.split(":")[0] for key, _ in remaining} == {"access.log"}
    assert found(indexed, PERSON) == remaining
    assert found(indexed, ("198.51.100.0",)) == truth(directory, ("198.51.100.0",)) != set()

    acting = Acting(SHOP_CONTROLLER, "r-1", "test", AS_OF, book=demo_vault.instruction_book())
    identities = IdentitySet.given([("ip", host) for host in PERSON])
    outcome = indexed.apply_erasure(indexed.plan_erasure(identities, acting), acting)
    assert [(done.table, done.records) for done in outcome.done] == [("access.log", len(remaining))]
    assert all(indexed.index.current(directory / name) for name in before)
    assert truth(directory, PERSON) == set()
    log_opens.clear()
    assert found(indexed, PERSON) == set()
    assert log_opens == []  # the fresh indexes say so without opening a file


def test_a_search_for_a_person_with_no_lines_opens_no_log_file(vault, tmp_path, log_opens):
    directory = write_logs(tmp_path / "logs")
    indexed = store(tmp_path / "logs", vault.indexer)
    found(indexed, PERSON)  # indexes every file
    log_opens.clear()

    assert found(indexed, NOBODY) == set()
    for name, *_ in FILES:
        assert apply_to_hosts(directory / name, list(NOBODY), action="drop", index=indexed.index).lines_changed == 0
    assert log_opens == []
    # A person seen in one file has that file opened, and no other.
    expected = truth(directory, (ONLY_IN_ONE_FILE,))
    log_opens.clear()
    assert found(indexed, (ONLY_IN_ONE_FILE,)) == expected != set()
    assert log_opens == ["access.log.1"]
    # Without an index every file is read: what the index saves.
    log_opens.clear()
    assert found(store(tmp_path / "logs", None), NOBODY) == set()
    assert sorted(log_opens) == sorted(name for name, *_ in FILES)


def spellings(address: str) -> list[bytes]:
    ip = ipaddress.ip_address(address)
    texts = {address, ip.exploded, ip.compressed}
    return [encoded for text in texts for encoded in (
        text.encode(), text.encode("utf-16-le"), text.encode("utf-16-be"), text.encode("utf-32-le"),
        base64.b64encode(text.encode()), ip.packed.hex().encode())] + [ip.packed]


def test_an_index_holds_no_plain_address_and_is_useless_without_the_keyring(vault, tmp_path):
    directory = write_logs(tmp_path / "logs")
    indexed = store(tmp_path / "logs", vault.indexer)
    found(indexed, PERSON)
    indexes = [index_path(directory / name).read_bytes() for name, *_ in FILES]
    hosts = {line.split(" ", 1)[0] for name, *_ in FILES for line in content(directory / name)}
    assert len(hosts) > 5000
    for host in hosts:
        assert not any(host.encode() in index for index in indexes)
    for address in (*PERSON, NEIGHBOUR, ONLY_IN_ONE_FILE):
        for spelled in spellings(address):
            assert not any(spelled in index for index in indexes), spelled

    # Made under another keyring (another vault's, or a copy restored without its keys), an index
    # is not used: the files are read in full, and every line is still found.
    create_keyring(tmp_path / "other" / "keyring.json")
    other = BlindIndexer(load_keyring(tmp_path / "other" / "keyring.json"))
    assert LogIndex(other, SHOP_CONTROLLER).current(directory / "access.log") is None
    assert found(store(tmp_path / "logs", other), PERSON) == truth(directory, PERSON)
    # ... nor is one made for another controller, whose digests of the same addresses differ.
    assert LogIndex(vault.indexer, "another-controller").current(directory / "access.log") is None


def test_a_damaged_index_is_not_used(vault, tmp_path):
    directory = write_logs(tmp_path / "logs")
    indexed = store(tmp_path / "logs", vault.indexer)
    found(indexed, PERSON)
    for name, damage in (("access.log", lambda data: data[:-1] + bytes([data[-1] ^ 1])),
                         ("access.log.1", lambda data: data[:len(data) // 2]),
                         ("access.log.2.gz", lambda data: b"")):
        path = index_path(directory / name)
        path.write_bytes(damage(path.read_bytes()))
        assert indexed.index and indexed.index.current(directory / name) is None
    assert found(indexed, PERSON) == truth(directory, PERSON)
