"""A one-line terminal progress bar that redraws in place, and stays quiet when not a terminal."""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["ProgressBar"]

_REDRAW_INTERVAL_S = 0.1  # faster redraws cost time and nobody reads them
_BAR_WIDTH_CHARS = 24


class ProgressBar:
    """``done/total`` with a bar and free-form fields; redrawn on a TTY, silent otherwise.

    Logs and captured output get no carriage-return spam: the caller prints its own summary.
    """

    def __init__(
        self,
        total: int | None,
        label: str = "",
        stream: TextIO | None = None,
        show_count: bool = True,
    ):
        self.total = None if total is None else max(total, 1)
        self.show_count = show_count
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_draw = 0.0
        self._width = 0

    def due(self, done: int) -> bool:
        """Whether :meth:`update` would redraw now: lets callers skip computing costly fields."""
        if not self.enabled:
            return False
        finished = self.total is not None and done >= self.total
        return finished or time.perf_counter() - self._last_draw >= _REDRAW_INTERVAL_S

    def update(self, done: int, fields: str = "") -> None:
        """Show ``done`` of ``total`` and ``fields``: at most every 0.1 s, and at the end."""
        if not self.due(done):
            return
        self._last_draw = time.perf_counter()
        if self.total is None:  # the total is unknown (a download without Content-Length)
            line = f"{self.label} {fields}".rstrip()
        else:
            filled = _BAR_WIDTH_CHARS * min(done, self.total) // self.total
            bar = "#" * filled + "." * (_BAR_WIDTH_CHARS - filled)
            count = f" {done}/{self.total}" if self.show_count else ""
            line = f"{self.label} [{bar}]{count} {fields}".rstrip()
        self.stream.write("\r" + line.ljust(self._width))
        self.stream.flush()
        self._width = len(line)

    def close(self, summary: str = "") -> None:
        """Erase the bar; then write ``summary`` as a line, on a terminal or not (logs too)."""
        if self.enabled and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
        if summary:
            self.stream.write(summary + "\n")
        self.stream.flush()
        self._width = 0
