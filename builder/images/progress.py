"""Build progress on stderr: a live rich display on a terminal, plain lines otherwise.

Plain lines also when `CI` is set (some CI systems give jobs a terminal whose log would
record every frame of an animation) or when `TERM=dumb`.
"""

from __future__ import annotations

import os
import sys
import time
from typing import IO, Any, Protocol

from builder.state.secrets import redact


class Progress(Protocol):
    def start(self, title: str) -> None: ...

    def step(self, text: str) -> None: ...

    def line(self, text: str) -> None: ...

    def finish(self, summary: str) -> None: ...

    def fail(self, summary: str) -> None: ...

    def note(self, text: str) -> None: ...


class PlainProgress:
    """One line per event, prefixed, for logs and CI."""

    def __init__(self, stream: IO[str] | None = None, *, verbose: bool = True) -> None:
        self.stream = stream or sys.stderr
        self.verbose = verbose
        self.title = ""

    def _write(self, text: str) -> None:
        self.stream.write(redact(text) + "\n")
        self.stream.flush()

    def start(self, title: str) -> None:
        self.title = title
        self._write(f"builder: {title}")

    def step(self, text: str) -> None:
        self._write(f"builder:   {text}")

    def line(self, text: str) -> None:
        if self.verbose:
            self._write(f"builder:     {text}")

    def finish(self, summary: str) -> None:
        self._write(f"builder: {summary}")

    def fail(self, summary: str) -> None:
        self._write(f"builder: {summary}")

    def note(self, text: str) -> None:
        self._write(f"builder: {text}")


class QuietProgress(PlainProgress):
    """Steps and notes only."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        super().__init__(stream, verbose=False)


class RichProgress:
    """A spinner with the current step and the latest output line; steps stay on screen."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(stderr=True, highlight=False)
        self._status: Any = None
        self._step = ""
        self._title = ""
        self._started = 0.0

    def _render(self, latest: str = "") -> str:
        from rich.markup import escape

        width = max(40, self.console.width - 4)
        elapsed = time.monotonic() - self._started
        head = f"{self._title} ({elapsed:.0f} s)"
        step = _clip(self._step, width - len(head) - 4)
        text = f"[bold]{escape(self._title)}[/bold] ({elapsed:.0f} s)  {escape(step)}"
        if latest:
            text += f"\n  [dim]{escape(_clip(latest, width - 2))}[/dim]"
        return text

    def start(self, title: str) -> None:
        self._title = redact(title)
        self._step = ""
        self._started = time.monotonic()
        self._status = self.console.status(self._render())
        self._status.start()

    def step(self, text: str) -> None:
        from rich.markup import escape

        self._step = redact(text)
        self.console.print(f"  [cyan]{escape(self._step)}[/cyan]", no_wrap=True,
                           overflow="ellipsis")
        if self._status is not None:
            self._status.update(self._render())

    def line(self, text: str) -> None:
        if self._status is not None:
            self._status.update(self._render(redact(text)))

    def finish(self, summary: str) -> None:
        from rich.markup import escape

        if self._status is not None:
            self._status.stop()
            self._status = None
        self.console.print(f"[green]✓[/green] {escape(redact(summary))}")

    def fail(self, summary: str) -> None:
        from rich.markup import escape

        if self._status is not None:
            self._status.stop()
            self._status = None
        self.console.print(f"[red]✗[/red] {escape(redact(summary))}")

    def note(self, text: str) -> None:
        from rich.markup import escape

        self.console.print(escape(redact(text)))


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def default_progress() -> Progress:
    if live_terminal():
        return RichProgress()
    return PlainProgress()


def live_terminal() -> bool:
    """Whether stderr is a person's terminal that can show an animation."""
    in_ci = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
    return sys.stderr.isatty() and not in_ci and os.environ.get("TERM") != "dumb"
