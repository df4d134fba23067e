"""What Helios logs, as the CLI shows it: ``warning: ...`` lines on stderr, each on its own.

stdout carries answers and JSON and nothing else. A streamed answer leaves its line open
while it arrives; a warning logged meanwhile (a cache store that went away) would be glued
to the answer where stdout and stderr reach the same terminal, so there the warning starts
on a new line, and the answer goes on below it.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from rich.text import Text

from helios.cli.context import console_err


class StdoutText:
    """Writes text to stdout and remembers whether its last line is still open."""

    def __init__(self) -> None:
        self.open_line = False

    def write(self, text: str) -> None:
        if not text:
            return
        sys.stdout.write(text)
        sys.stdout.flush()
        self.open_line = not text.endswith("\n")

    def end_line(self) -> None:
        """Close the open line, if any, so what follows starts on a line of its own."""
        if self.open_line:
            self.write("\n")


stdout_text = StdoutText()
"""The CLI's one stdout writer for text that arrives in pieces (a streamed answer)."""


class StderrHandler(logging.Handler):
    """Log records of WARNING and above as one ``level: message`` line each on stderr."""

    def __init__(self, stdout: StdoutText) -> None:
        super().__init__(logging.WARNING)
        self.stdout = stdout

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                message += f" ({type(record.exc_info[1]).__name__}: {record.exc_info[1]})"
            if self.stdout.open_line and _one_terminal():
                # stdout's line stays open (the answer goes on below); the terminal's ends
                sys.stderr.write("\n")
                sys.stderr.flush()
                self.stdout.open_line = False
            level = "warning" if record.levelno < logging.ERROR else "error"
            label = Text(f"{level}: ", style="yellow" if level == "warning" else "red")
            console_err.print(label + Text(message), soft_wrap=True)
        except Exception:
            self.handleError(record)


@contextmanager
def warnings_on_stderr() -> Iterator[StderrHandler]:
    """Show log records as :class:`StderrHandler` lines while the block runs."""
    handler = StderrHandler(stdout_text)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


def _one_terminal() -> bool:
    """Whether stdout and stderr write to the same terminal."""
    try:
        if not (sys.stdout.isatty() and sys.stderr.isatty()):
            return False
        return os.ttyname(sys.stdout.fileno()) == os.ttyname(sys.stderr.fileno())
    except (AttributeError, OSError, ValueError):  # a replaced or closed stream
        return False
