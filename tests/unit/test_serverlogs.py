"""Server-log retention on real files: anonymise or drop old lines, atomically, idempotently."""

import gzip
import hashlib
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from include.errors import InvalidInput
from include.files import TEMP_PREFIX
from include.serverlogs import anonymise_host, apply_to_directory, apply_to_file

CUTOFF = datetime(2026, 10, 1, tzinfo=UTC)


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


KILLABLE = """
import sys
from datetime import datetime, UTC
import include.serverlogs as logs
logs.BLOCK_BYTES = 64 * 1024
real = logs._process_block
def slow(*args):
    print("block", flush=True)
    import time; time.sleep(0.05)
    return real(*args)
logs._process_block = slow
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
    assert proc.stdout.readline() == "block\n"
    proc.stdout.readline()  # at least one block is in the temporary file
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert list(killed_dir.glob(f"{TEMP_PREFIX}*")), "the kill came after the rewrite finished"
    assert hashlib.sha256((killed_dir / "access.log").read_bytes()).hexdigest() == original
    done = apply_to_directory(killed_dir, "access.log*", cutoff=CUTOFF, action="anonymise")
    assert done.stale_temporaries_removed == 1
    apply_to_directory(clean_dir, "access.log*", cutoff=CUTOFF, action="anonymise")
    assert (killed_dir / "access.log").read_bytes() == (clean_dir / "access.log").read_bytes()
    assert sorted(p.name for p in killed_dir.iterdir()) == ["access.log"]
