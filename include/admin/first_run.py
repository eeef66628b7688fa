"""What `make run` prints once Airflow answers: where its logs go, then the address and the login,
last, so that they are what the terminal shows (Airflow's own output, thousands of lines of task and
HTTP logs, goes to the log file instead).

    python -m include.admin.first_run --pid PID --log FILE --passwords FILE [--url URL]

Waits until Airflow's health endpoint answers; if Airflow stops first, prints the log's last lines
and exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

HEALTH = "/api/v2/monitor/health"
TAIL = 30  # lines of the log shown when Airflow stops before it answers


def running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + HEALTH, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def login_lines(url: str, passwords: Path, log: Path) -> list[str]:
    """The lines printed once Airflow answers: the log's place first, the address and login last."""
    try:
        users = json.loads(passwords.read_text())
    except (OSError, ValueError):
        users = {}
    login = (f"Log in as {user} with the password {password}" for user, password in sorted(users.items()))
    return [f"Airflow's logs: {log} (follow them with: tail -f {log})",
            f"Airflow is up: open {url} and click a DAG (dsar_fulfilment first: Trigger, then the form)",
            next(login, f"Log in with the user and password in {passwords}")]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pid", type=int, required=True, help="the airflow standalone process")
    parser.add_argument("--log", type=Path, required=True, help="where its output goes")
    parser.add_argument("--passwords", type=Path, required=True, help="Airflow's generated passwords file")
    parser.add_argument("--url", default=f"http://localhost:{os.environ.get('AIRFLOW__API__PORT', '8080')}",
                        help="Airflow's address (default: the port of AIRFLOW__API__PORT, else 8080)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for Airflow to answer")
    args = parser.parse_args(argv)
    deadline = time.monotonic() + args.timeout
    while not answers(args.url):
        if not running(args.pid) or time.monotonic() > deadline:
            lines = args.log.read_text(errors="replace").splitlines()[-TAIL:] if args.log.exists() else []
            print("\n".join([*lines, f"Airflow did not start; its output is in {args.log}"]), file=sys.stderr)
            return 1
        time.sleep(1)
    print("\n".join(login_lines(args.url, args.passwords, args.log)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
