"""Fixtures for the dataset tests: a real HTTP server on 127.0.0.1 serving generated archives."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

_POLL_INTERVAL_S = 0.02


class _Server(http.server.ThreadingHTTPServer):
    """A threading HTTP server whose responses carry ``header_overrides`` in place of theirs."""

    header_overrides: dict[str, str]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def send_header(self, keyword: str, value: str) -> None:
        # Lets a test play a broken mirror (a garbled Content-Length, say).
        super().send_header(keyword, self.server.header_overrides.get(keyword, value))


@dataclass
class FileServer:
    """Files put in ``directory`` are served at ``url(name)``; ``headers`` replace the
    server's own response headers of the same name."""

    directory: Path
    base_url: str
    headers: dict[str, str]

    def url(self, name: str) -> str:
        return f"{self.base_url}/{name}"


@pytest.fixture
def file_server(tmp_path: Path) -> Iterator[FileServer]:
    directory = tmp_path / "served"
    directory.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = _Server(("127.0.0.1", 0), handler)
    server.header_overrides = {}
    server.daemon_threads = True
    # A short poll interval so shutdown() returns promptly at teardown.
    thread = threading.Thread(
        target=server.serve_forever, args=(_POLL_INTERVAL_S,), name="test-http", daemon=True
    )
    thread.start()
    try:
        base_url = f"http://127.0.0.1:{server.server_address[1]}"
        yield FileServer(directory, base_url, server.header_overrides)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
