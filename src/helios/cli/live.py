"""What ``helios run`` shows while the pipeline works.

On a terminal: each persona's text as it arrives, under a live status line (stage, model,
elapsed, tokens); a finished persona's text stays on screen. Piped: the same text, written
as it arrives, with a header per persona and no status line.

When a persona's stream breaks and is tried again, the display says so and starts that
persona's text over: on a terminal the live text is cleared (a note above it says why);
piped, where written text cannot be taken back, a line marks the restart and the header is
written again, so a reader knows the text above it was abandoned.
"""

from __future__ import annotations

import sys
import time
from typing import IO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.text import Text

from helios.pipeline.results import StageRecord

_TAIL_LINES = 12


class _Current:
    """The persona streaming now: its text so far and what the status line says."""

    def __init__(self, stage: str, pass_number: int, model: str) -> None:
        self.stage = stage
        self.pass_number = pass_number
        self.model = model
        self.started = time.perf_counter()
        self.parts: list[str] = []
        self.attempt = 1

    @property
    def label(self) -> str:
        return self.stage if self.pass_number == 1 else f"{self.stage} (pass {self.pass_number})"

    @property
    def attempt_label(self) -> str:
        return "" if self.attempt == 1 else f" · attempt {self.attempt}"

    def __rich__(self) -> RenderableType:
        text = "".join(self.parts)
        tail = "\n".join(text.splitlines()[-_TAIL_LINES:])
        elapsed = time.perf_counter() - self.started
        status = Text.assemble(
            ("● ", "bold cyan"),
            (self.label, "bold"),
            f" · {self.model}{self.attempt_label} · {elapsed:.1f} s · {len(self.parts)} chunks",
            style="dim",
        )
        return Group(Text(tail), status)


class LiveDisplay:
    """A :class:`~helios.pipeline.results.PipelineObserver` for a terminal or a pipe."""

    def __init__(self, console: Console, out: IO[str] | None = None) -> None:
        self.console = console
        self.out = out or sys.stdout
        self.interactive = console.is_terminal
        self._current: _Current | None = None
        self._live: Live | None = None

    def __enter__(self) -> LiveDisplay:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop_live()

    def stage_started(self, stage: str, persona: str, pass_number: int, model: str) -> None:
        self._current = _Current(stage, pass_number, model)
        if self.interactive:
            self._live = Live(
                self._current, console=self.console, refresh_per_second=8, transient=True
            )
            self._live.start()
        else:
            self.out.write(f"\n## {self._current.label} ({model})\n")
            self.out.flush()

    def chunk(self, stage: str, text: str) -> None:
        current = self._current
        if current is None:
            return
        current.parts.append(text)
        if not self.interactive:
            self.out.write(text)
            self.out.flush()

    def stage_restarted(self, stage: str, reason: str) -> None:
        current = self._current
        if current is None:
            return
        current.parts.clear()
        current.attempt += 1
        if self.interactive:
            message = f"· {current.label}: {reason}; its text starts over"
            self.console.print(Text(message, style="yellow"))
        else:
            self.out.write(
                f"\n· {current.label}: {reason}; the text above is abandoned\n"
                f"## {current.label} ({current.model}){current.attempt_label}\n"
            )
            self.out.flush()

    def stage_finished(self, record: StageRecord) -> None:
        current = self._current
        self._stop_live()
        self._current = None
        if current is None:
            return
        cached = " · from cache" if record.cache_layer else ""
        footer = (
            f"{record.model} · TTFT {record.ttft_s * 1000:.0f} ms · "
            f"{record.duration_s:.2f} s · {record.output_tokens} tokens{cached}"
        )
        if self.interactive:
            self.console.print(Text(f"── {current.label} ", style="bold cyan"))
            self.console.print(Text("".join(current.parts)))
            self.console.print(Text(footer, style="dim"))
        else:
            self.out.write(f"\n[{footer}]\n")
            self.out.flush()

    def note(self, message: str) -> None:
        if self.interactive:
            self.console.print(Text(f"· {message}", style="yellow"))
        else:
            self.out.write(f"\n· {message}\n")
            self.out.flush()

    def _stop_live(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
