"""Server-log retention on real files: anonymise or drop old lines, atomically, idempotently."""

import gzip
import hashlib
import ipaddress
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import include.stores.serverlogs as logs
from include.common.errors import InvalidInput
from include.common.files import TEMP_PREFIX
from include.stores.serverlogs import anonymise_host, apply_to_directory, apply_to_file, apply_to_hosts, line_time

CUTOFF = datetime(2026, 10, 1, tzinfo=UTC)
DAY = timedelta(days=1)


def line(host: str, when: datetime, path: str = "/") -> str:
    return f'{host} - - [{when:%d/%b/%Y:%H:%M:%S} +0000] "GET {path} HTTP/1.1" 200 512 "-" "UA"\n'


def sample(days_before: int = 3, days_after: int = 3) -> str:
    lines = []
    for day in range(-days_before, days_after):
        start = CUTOFF + timedelta(days=day)
        lines += [line("203.0.113.77", start + timedelta(hours=1)),
                  line("2001:db8:abcd:1234::9", start + timedelta(hours=2)),
                  line("host.example.net", start + timedelta(hours=3))]
    return "".join(lines)


def test_hosts_are_truncated_to_24_and_48_bits():
    assert anonymise_host(b"203.0.113.77") == b"203.0.113.0"
    assert anonymise_host(b"2001:db8:abcd:1234::9") == b"2001:db8:abcd::"
    assert anonymise_host(b"host.example.net") == b"-"


@pytest.mark.parametrize("name", ["access.log", "access.log.1", "access.log.2.gz"])
def test_old_lines_are_anonymised_young_ones_kept_and_a_second_run_changes_nothing(tmp_path, name):
    path = tmp_path / name
    text = sample()
    path.write_bytes(gzip.compress(text.encode()) if name.endswith(".gz") else text.encode())
    outcome = apply_to_file(path, cutoff=CUTOFF, action="anonymise")
    assert outcome.rewritten and outcome.lines_changed == 9
    out = (gzip.decompress(path.read_bytes()) if name.endswith(".gz") else path.read_bytes()).decode()
    old, young = out.splitlines()[:9], out.splitlines()[9:]
    assert young == text.splitlines()[9:]
    assert "203.0.113.77" not in "".join(old) and "abcd:1234" not in "".join(old)
    assert [entry.split()[0] for entry in old[:3]] == ["203.0.113.0", "2001:db8:abcd::", "-"]
    before = path.stat()
    again = apply_to_file(path, cutoff=CUTOFF, action="anonymise")
    assert (again.rewritten, again.lines_changed) == (False, 0)
    assert path.stat().st_ino == before.st_ino and path.stat().st_mtime_ns == before.st_mtime_ns


def test_drop_removes_old_lines_and_out_of_order_lines_are_judged_one_by_one(tmp_path):
    path = tmp_path / "access.log"
    text = sample() + line("198.51.100.5", CUTOFF - timedelta(minutes=5))  # logged late
    path.write_text(text)
    apply_to_file(path, cutoff=CUTOFF, action="drop")
    remaining = path.read_text().splitlines()
    assert remaining == text.splitlines()[9:18]
    assert "198.51.100.5" not in path.read_text()


def test_unreadable_times_count_as_old_and_bad_input_is_named(tmp_path):
    path = tmp_path / "access.log"
    path.write_text("192.0.2.1 garbage without a time\n" + line("192.0.2.2", CUTOFF + timedelta(days=5)))
    apply_to_file(path, cutoff=CUTOFF, action="anonymise")
    assert path.read_text().splitlines()[0].startswith("192.0.2.0 garbage")
    with pytest.raises(InvalidInput, match="action must be one of anonymise, drop"):
        apply_to_file(path, cutoff=CUTOFF, action="shred")
    broken = tmp_path / "access.log.3.gz"
    broken.write_bytes(b"not gzip at all")
    with pytest.raises(InvalidInput, match=f"server log {broken} cannot be read"):
        apply_to_file(broken, cutoff=CUTOFF, action="anonymise")
    assert broken.read_bytes() == b"not gzip at all"
    with pytest.raises(InvalidInput, match="directory .* does not exist"):
        apply_to_directory(tmp_path / "missing", "access.log*", cutoff=CUTOFF, action="drop")


# The rewrite, stopped for good once its first block is in the temporary file: the test kills it
# there, on that event, whatever the machine's speed.
KILLABLE = """
import contextlib, sys, threading
from datetime import datetime
import include.stores.serverlogs as logs
logs.BLOCK_BYTES = 64 * 1024
real = logs.replacing

class Stalling:
    def __init__(self, temp):
        self.temp = temp
    def write(self, data):
        written = self.temp.write(data)
        self.temp.flush()
        print("block written", flush=True)
        threading.Event().wait()  # never set: held here until killed
        return written
    def __getattr__(self, name):
        return getattr(self.temp, name)

@contextlib.contextmanager
def stalling(path, **kwargs):
    with real(path, **kwargs) as temp:
        yield Stalling(temp)

logs.replacing = stalling
logs.apply_to_file(logs.Path(sys.argv[1]), cutoff=datetime.fromisoformat(sys.argv[2]), action="anonymise")
"""


def test_a_rewrite_killed_halfway_leaves_the_original_and_the_rerun_ends_as_an_uninterrupted_one(tmp_path):
    big = "".join(sample(40, 5) for _ in range(150))  # several blocks
    killed_dir, clean_dir = tmp_path / "killed", tmp_path / "clean"
    for directory in (killed_dir, clean_dir):
        directory.mkdir()
        (directory / "access.log").write_text(big)
    original = hashlib.sha256(big.encode()).hexdigest()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, "-c", KILLABLE, str(killed_dir / "access.log"), CUTOFF.isoformat()],
                            stdout=subprocess.PIPE, env=env, text=True)
    assert proc.stdout.readline() == "block written\n"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert list(killed_dir.glob(f"{TEMP_PREFIX}*")), "the kill came after the rewrite finished"
    assert hashlib.sha256((killed_dir / "access.log").read_bytes()).hexdigest() == original
    done = apply_to_directory(killed_dir, "access.log*", cutoff=CUTOFF, action="anonymise")
    assert done.stale_temporaries_removed == 1
    apply_to_directory(clean_dir, "access.log*", cutoff=CUTOFF, action="anonymise")
    assert (killed_dir / "access.log").read_bytes() == (clean_dir / "access.log").read_bytes()
    assert sorted(p.name for p in killed_dir.iterdir()) == ["access.log"]


_HOSTS = st.one_of(
    st.tuples(*[st.integers(0, 99_999)] * 4).map(lambda o: ".".join(map(str, o))),
    st.builds(lambda n, upper: (f"{n:x}" if not upper else f"{n:X}"), st.integers(0, 2**128 - 1), st.booleans())
    .map(lambda h: ":".join(h.zfill(32)[i:i + 4] for i in range(0, 32, 4))),
    st.integers(0, 2**128 - 1).map(lambda n: str(ipaddress.IPv6Address(n))),
    st.from_regex(r"[0-9a-fA-F:.]{1,20}", fullmatch=True),
    st.sampled_from(["-", "host.example", "::", "1:2:3::", "::ffff:1.2.3.4", "", "1:2:3:4:5:6:7:8:9",
                     "1:2:3::4:5:6:7:8", "1:2:3::4::5", "1:2:3:12345::", "fe80:1:2::1%eth0"]),
)
# The rest of a line: user fields, request, referrer and agent in the shapes logs hold (queries with
# spaces, Apache's \" escapes, a "?" in the agent only, no protocol, no time), and fragments of them.
_QUOTED = st.sampled_from(["/", "/a?email=bob@example.com", "/a?q=x y&p=1", '/a?q=\\"x\\" z', "/p?", "?",
                           "/a\\\\?b", "/a b?c HTTP/1.0 d", "/a?b HTTP/1.1 HTTP/2"])
_REST = st.one_of(
    st.builds(lambda ident, user, method, target, proto, referer, agent:
              f'{ident} {user} [01/Jan/2020:00:00:00 +0000] "{method}{target}{proto}" 200 1 "{referer}" "{agent}"',
              st.sampled_from(["-", "id"]), st.sampled_from(["-", "bob", "bob@example.com", "a b", '"', "[x"]),
              st.sampled_from(["GET ", "", "POST  "]), _QUOTED, st.sampled_from([" HTTP/1.1", "", " HTTP/"]),
              st.sampled_from(["-", "https://x.example/?to=bob@example.com", "https://x.example/p", '?a\\"b"']),
              st.sampled_from(["UA", "UA?x", "-"])),
    st.sampled_from(['- - [01/Jan/2020:00:00:00 +0000] "GET / HTTP/1.1" 200 1', "-", "x\xe9", "- bob",
                     'a b [t] "GET /?x" 1 2 "r?s" "u"']),
    st.text(st.sampled_from(' "?\\[]-aH/TP1.'), max_size=40),
)
_LINES = st.builds(lambda host, rest: f"{host} {rest}".encode(), _HOSTS, _REST)


@settings(max_examples=1500, deadline=None)
@given(st.lists(_LINES | st.binary(max_size=30), max_size=12), st.booleans())
def test_bulk_anonymisation_agrees_with_the_line_by_line_rules(lines, final_newline):
    block = b"\n".join(lines) + (b"\n" if final_newline and lines else b"")
    bulk, changed = logs._anonymise_lines(block)
    assert (bytes(bulk), changed) == logs._anonymise_block(block)
    assert logs._anonymise_block(bytes(bulk)) == (bytes(bulk), 0)  # a second run changes nothing


@pytest.mark.parametrize("action", ["anonymise", "drop"])
def test_the_outcome_does_not_depend_on_where_blocks_are_cut(tmp_path, monkeypatch, action):
    long_path = "/" + "x" * (2 * logs._PEEK)  # a last line longer than the peek at a block's end
    text = "".join(sample(30, 5) for _ in range(3)) + line("192.0.2.44", CUTOFF - timedelta(days=9), long_path)
    text += "192.0.2.9 a line\rwith a carriage return and no time\n" + line("192.0.2.10", CUTOFF - timedelta(days=20))
    results = []
    for block_bytes in (2**20, 4096, 1000, 97):
        monkeypatch.setattr(logs, "BLOCK_BYTES", block_bytes)
        path = tmp_path / f"access.log.{block_bytes}"
        path.write_bytes(text.encode().rstrip(b"\n"))  # the last line unfinished, as a live log's may be
        outcome = apply_to_file(path, cutoff=CUTOFF, action=action)
        results.append((path.read_bytes(), outcome.lines_changed))
    assert all(result == results[0] for result in results[1:])
    out, changed = results[0]
    assert b"192.0.2.44" not in out and b"192.0.2.10" not in out and b"192.0.2.9 " not in out
    assert changed == 3 * 30 * 3 + 3  # every old line: 30 old days of 3 lines in each sample, and the 3 added
    young = [entry for entry in text.splitlines() if (line_time(entry.encode()) or CUTOFF - DAY) >= CUTOFF]
    assert len(young) == 3 * 5 * 3 and all(entry in out.decode() for entry in young)


def personal_line(host: str, when: datetime) -> str:
    """A line with what the erasure and the retention must not keep: a login, an email in the
    query, a phone in a query with a space, and the email again in the referrer's query."""
    return (f'{host} - jane.doe@example.com [{when:%d/%b/%Y:%H:%M:%S} +0000] '
            f'"GET /newsletter/confirm?email=jane.doe%40example.com&tel=+44 7700 900123 HTTP/1.1" 200 512 '
            f'"https://mail.example.net/read?from=jane.doe@example.com" "Mozilla/5.0 (X11; Linux x86_64)"\n')


PERSONAL = ("jane", "7700", "900123", "example.com [", "from=", "email=")


def _read(path: Path) -> str:
    return (gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()).decode()


def _write(path: Path, text: str) -> None:
    path.write_bytes(gzip.compress(text.encode()) if path.suffix == ".gz" else text.encode())


@pytest.mark.parametrize("name", ["access.log", "access.log.2.gz"])
def test_old_lines_lose_their_user_fields_and_query_strings_too(tmp_path, name):
    path = tmp_path / name
    old = [personal_line("203.0.113.77", CUTOFF - timedelta(days=d)) for d in (3, 2)]
    old.append(personal_line("2001:db8:abcd:1234::9", CUTOFF - DAY))
    young = personal_line("198.51.100.7", CUTOFF + DAY)
    _write(path, "".join(old) + young)
    outcome = apply_to_file(path, cutoff=CUTOFF, action="anonymise")
    assert (outcome.rewritten, outcome.lines_changed) == (True, 3)
    *anonymised, kept = _read(path).splitlines(keepends=True)
    assert kept == young
    for entry in anonymised:
        assert not any(value in entry for value in PERSONAL), entry
    assert anonymised[0] == (f'203.0.113.0 - - [{CUTOFF - 3 * DAY:%d/%b/%Y:%H:%M:%S} +0000] '
                             '"GET /newsletter/confirm HTTP/1.1" 200 512 "https://mail.example.net/read" '
                             '"Mozilla/5.0 (X11; Linux x86_64)"\n')
    assert anonymised[2].startswith("2001:db8:abcd:: - - [")
    again = apply_to_file(path, cutoff=CUTOFF, action="anonymise")
    assert (again.rewritten, again.lines_changed) == (False, 0)


@pytest.mark.parametrize("name", ["access.log", "access.log.2.gz"])
def test_an_erasure_anonymises_the_persons_lines_whole_and_leaves_the_others(tmp_path, name):
    path = tmp_path / name
    when = CUTOFF + 30 * DAY  # young: an erasure does not wait for the retention limit
    theirs = [personal_line("192.0.2.10", when), personal_line("2001:db8:5:6::7", when + DAY)]
    others = personal_line("192.0.2.11", when)
    _write(path, theirs[0] + others + theirs[1])
    outcome = apply_to_hosts(path, ["192.0.2.10", "2001:db8:5:6::7"], action="anonymise")
    assert (outcome.rewritten, outcome.lines_changed) == (True, 2)
    first, kept, second = _read(path).splitlines(keepends=True)
    assert kept == others
    for entry in (first, second):
        assert not any(value in entry for value in PERSONAL), entry
        assert ' - - [' in entry and '"GET /newsletter/confirm HTTP/1.1"' in entry
    assert first.startswith("192.0.2.0 ") and second.startswith("2001:db8:5:: ")
