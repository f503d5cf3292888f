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


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class FileServer:
    """Files put in ``directory`` are served at ``url(name)``."""

    directory: Path
    base_url: str

    def url(self, name: str) -> str:
        return f"{self.base_url}/{name}"


@pytest.fixture
def file_server(tmp_path: Path) -> Iterator[FileServer]:
    directory = tmp_path / "served"
    directory.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    # A short poll interval so shutdown() returns promptly at teardown.
    thread = threading.Thread(
        target=server.serve_forever, args=(_POLL_INTERVAL_S,), name="test-http", daemon=True
    )
    thread.start()
    try:
        yield FileServer(directory, f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
