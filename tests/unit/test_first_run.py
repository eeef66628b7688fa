"""`make run`'s last lines: once Airflow answers, where its logs are, then the address and the login,
nothing after them, and no warning. The printing part is run here against a stand-in for Airflow's
health endpoint (starting Airflow itself takes minutes); `.ci/first-run` runs the whole `make run`.
"""

from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from include.admin.first_run import HEALTH, main


class Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_response(200 if self.path == HEALTH else 404)
        self.end_headers()

    def log_message(self, *args) -> None:  # the test's output stays clean
        pass


@pytest.fixture
def airflow_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_the_url_and_the_login_are_the_last_lines(airflow_url, tmp_path, capsys):
    passwords = tmp_path / "simple_auth_manager_passwords.json.generated"
    passwords.write_text(json.dumps({"admin": "s3cret-Word"}))
    log = tmp_path / "airflow-standalone.log"
    log.write_text("WARNING - something Airflow said\n" * 5000)
    assert main(["--pid", str(os.getpid()), "--log", str(log), "--passwords", str(passwords),
                 "--url", airflow_url]) == 0
    printed = capsys.readouterr()
    lines = printed.out.splitlines()
    assert lines[-2].startswith(f"Airflow is up: open {airflow_url} ") and "dsar_fulfilment" in lines[-2]
    assert lines[-1] == "Log in as admin with the password s3cret-Word"
    assert str(log) in lines[0] and len(lines) == 3
    assert "warn" not in printed.out.lower() and printed.err == ""


def test_an_airflow_that_stops_shows_the_end_of_its_log(tmp_path, capsys):
    log = tmp_path / "airflow-standalone.log"
    log.write_text("starting\nError: the port is taken\n")
    gone = 2**22 + 1  # above Linux's largest pid: no such process
    assert main(["--pid", str(gone), "--log", str(log), "--passwords", str(tmp_path / "none"),
                 "--url", "http://127.0.0.1:9"]) == 1
    assert "the port is taken" in capsys.readouterr().err
