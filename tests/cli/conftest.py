import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from helios.cli import main
from helios.providers.base import Provider
from helios.runtime import Runtime


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


RunCli = Callable[..., CliResult]


@pytest.fixture
def run_cli(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> RunCli:
    """Run ``helios ARGS`` in-process through the real entry point; never raises."""
    monkeypatch.chdir(tmp_path)  # no stray helios.yaml from the developer's directory
    monkeypatch.setenv("COLUMNS", "200")  # rich tables wrap at 80 columns when captured

    def run(*args: str) -> CliResult:
        monkeypatch.setattr(sys, "argv", ["helios", *args])
        with pytest.raises(SystemExit) as info:
            main()
        captured = capsys.readouterr()
        code = info.value.code
        return CliResult(code if isinstance(code, int) else 1, captured.out, captured.err)

    return run


def serve_in_every_runtime(monkeypatch: pytest.MonkeyPatch, *providers: Provider) -> None:
    """Every runtime a command opens serves ``providers`` as they are (scripted doubles
    standing in for paid APIs), the rest of it built from the settings as usual."""
    opened = Runtime.open.__func__  # type: ignore[attr-defined]

    def open_with_doubles(cls: type[Runtime], *args: Any, **kwargs: Any) -> Any:
        return opened(cls, *args, **{**kwargs, "providers": providers})

    monkeypatch.setattr(Runtime, "open", classmethod(open_with_doubles))


def default_sigint() -> None:
    """``Popen(preexec_fn=default_sigint)`` for a child the test presses Ctrl-C on: a child
    started from a shell's background job inherits SIGINT ignored (POSIX), and Python then
    installs no KeyboardInterrupt handler, so no Ctrl-C would reach it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
