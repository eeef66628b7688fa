"""Real faults for tests: a TCP proxy in front of a real database server that a test cuts and
restores, and a tiny filesystem that fills up."""

from __future__ import annotations

import selectors
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import ci_requires_services


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a server. While cut, open connections are dropped and new ones are
    refused (closed at once), as when a database server goes away. With `cut_at` set, the proxy cuts
    itself the first time a client sends those bytes (a query naming a table), before they reach the
    server: the client is left waiting for the answer to a query in flight."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.is_cut = False
        self.refused = 0
        self.on_refusal = None  # called once, with no argument, at the first refused connection
        self.cut_at: bytes | None = None
        self.cut_mid_query = threading.Event()
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.is_cut:
                client.close()
                self.refused += 1
                if self.refused == 1 and self.on_refusal:
                    self.on_refusal()
                continue
            server = socket.create_connection(self.target)
            with self._lock:
                self._open += [client, server]
            threading.Thread(target=self._pipe, args=(client, server), daemon=True).start()

    def _pipe(self, client: socket.socket, server: socket.socket) -> None:
        selector = selectors.DefaultSelector()
        selector.register(client, selectors.EVENT_READ, server)
        selector.register(server, selectors.EVENT_READ, client)
        try:
            while True:
                for key, _ in selector.select(timeout=1):
                    data = key.fileobj.recv(65536)
                    if not data:
                        return
                    if key.fileobj is client and self.cut_at and self.cut_at in data:
                        self.cut_at = None
                        self.cut_mid_query.set()
                        self.cut()
                        return
                    key.data.sendall(data)
        except OSError:
            return
        finally:
            selector.close()
            for end in (client, server):
                end.close()

    def cut(self) -> None:
        self.is_cut = True
        with self._lock:
            for end in self._open:
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self._open.clear()

    def restore(self) -> None:
        self.is_cut = False

    def close(self) -> None:
        self._stop = True
        self.cut()
        self.listener.close()


@contextmanager
def tiny_filesystem(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` mounted at path, to fill up; the test skips (fails under CI) if mounting is
    not permitted here."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        message = f"cannot mount a tmpfs to fill up ({mounted.stderr.strip()})"
        if ci_requires_services():
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)
