"""The benchmark harness: interleaved A/B runs, their statistics, results and the table.

Every scenario compares builder (side A) with the conventional way or a floor (side B). Both
sides run in one process, interleaved A B A B, after a warm-up of each that is not counted.
An untimed `before` step prepares each run (e.g. a fresh one-line change), and an untimed
`after` step checks what the run produced and may return metrics (bytes pushed, requests).
Results carry median, min and max of each side and the ratio of the medians; a goal says what
a scenario must show, and whether it did.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Metrics = dict[str, float]
TIMES = "\u00d7"  # the multiplication sign of "9.1x faster"
DASH = "\u2013"  # the en dash of "min-max"


@dataclass
class Side:
    """One side of a comparison: `run` is timed, `before` and `after` are not."""

    label: str
    run: Callable[[], Any]
    before: Callable[[], Any] | None = None
    after: Callable[[Any], Metrics | None] | None = None


@dataclass
class Series:
    """The timed samples of one side, and the metrics its `after` step returned per run."""

    label: str
    samples: list[float] = field(default_factory=list)
    metrics: dict[str, list[float]] = field(default_factory=dict)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def min(self) -> float:
        return min(self.samples)

    @property
    def max(self) -> float:
        return max(self.samples)

    def metric(self, name: str) -> float | None:
        """The median of a metric over the counted runs, or None if it was never reported."""
        values = self.metrics.get(name)
        return statistics.median(values) if values else None

    def cell(self) -> str:
        return f"{fmt_seconds(self.median)} ({fmt_seconds(self.min)}{DASH}{fmt_seconds(self.max)})"


def _once(side: Side, series: Series | None, log: Callable[[str], None], tag: str) -> None:
    if side.before is not None:
        side.before()
    started = time.perf_counter()
    value = side.run()
    elapsed = time.perf_counter() - started
    metrics = side.after(value) if side.after is not None else None
    log(
        f"    {tag} {side.label}: {elapsed:.3f} s"
        + "".join(f", {k}={v:g}" for k, v in (metrics or {}).items())
    )
    if series is not None:
        series.samples.append(elapsed)
        for key, number in (metrics or {}).items():
            series.metrics.setdefault(key, []).append(number)


def interleave(
    a: Side, b: Side, reps: int, warmup: int = 1, log: Callable[[str], None] | None = None
) -> tuple[Series, Series]:
    """Warm up each side `warmup` times, then run A B A B ... `reps` rounds."""
    ours, theirs = interleave_all([a, b], reps, warmup, log)
    return ours, theirs


def interleave_all(
    sides: Sequence[Side], reps: int, warmup: int = 1, log: Callable[[str], None] | None = None
) -> list[Series]:
    """Warm up each side `warmup` times, then run A B C A B C ... `reps` rounds."""
    if reps < 1:
        raise ValueError("reps must be at least 1")
    say = log or progress
    for index in range(warmup):
        for side in sides:
            _once(side, None, say, f"warm-up {index + 1}")
    series = [Series(side.label) for side in sides]
    for index in range(reps):
        for side, samples in zip(sides, series, strict=True):
            _once(side, samples, say, f"rep {index + 1}/{reps}")
    return series


GoalKind = Literal["faster", "at_most", "overhead", "within"]


@dataclass(frozen=True)
class Goal:
    """What a scenario must show.

    faster:   B's median / A's median >= value ("at least 5x faster")
    at_most:  A's median / B's median <= value ("at most 2x the floor")
    overhead: A's median - B's median <= value seconds ("at most 0.15 s overhead")
    within:   A's median <= value seconds, whatever B took ("under 0.3 s")
    `extra` is a further condition the scenario checks itself (e.g. "0 bytes pushed").
    """

    kind: GoalKind
    value: float
    extra: str = ""

    def main_text(self) -> str:
        return {
            "faster": f"≥{self.value:g}{TIMES} faster",
            "at_most": f"≤{self.value:g}{TIMES} the floor",
            "overhead": f"≤{self.value:g} s overhead",
            "within": f"<{self.value:g} s",
        }[self.kind]

    def text(self) -> str:
        return f"{self.main_text()}, {self.extra}" if self.extra else self.main_text()


@dataclass
class Result:
    """One row of the table: a scenario on one project, builder against the other side."""

    key: str  # "a", "b", ... ; the scenario letter of the issue
    title: str  # what is measured
    project: str  # e.g. "large"
    ours: Series
    theirs: Series
    goal: Goal | None = None
    notes: list[str] = field(default_factory=list)  # e.g. "pushed 0 B vs 48.1 MB"
    extra_ok: bool = True  # the goal's extra condition, checked by the scenario
    kind: GoalKind = "faster"  # how the result reads: a speed-up, a floor, an overhead

    @property
    def ratio(self) -> float:
        """The other side's median over builder's (> 1: builder is faster)."""
        return self.theirs.median / self.ours.median if self.ours.median > 0 else float("inf")

    @property
    def overhead(self) -> float:
        return self.ours.median - self.theirs.median

    def statement(self) -> str:
        kind = self.goal.kind if self.goal is not None else self.kind
        if kind == "overhead":
            return f"{self.overhead:+.3f} s over {self.theirs.label}"
        if kind == "within":
            return f"{fmt_seconds(self.ours.median)}, {1 / self.ratio:.2f}{TIMES} the floor"
        if kind == "at_most":
            return f"{1 / self.ratio:.2f}{TIMES} the floor"
        if self.ratio >= 1:
            return f"{self.ratio:.1f}{TIMES} faster"
        return f"{1 / self.ratio:.1f}{TIMES} slower"

    @property
    def main_met(self) -> bool | None:
        """The goal's figure alone (the ratio or the overhead), without its extra condition."""
        if self.goal is None:
            return None
        value = self.goal.value
        if self.goal.kind == "faster":
            return self.ratio >= value
        if self.goal.kind == "at_most":
            return self.ratio > 0 and 1 / self.ratio <= value
        if self.goal.kind == "within":
            return self.ours.median < value
        return self.overhead <= value

    @property
    def met(self) -> bool | None:
        main = self.main_met
        return None if main is None else main and self.extra_ok

    def verdict(self) -> str:
        """Which parts of the goal held, e.g. "≥5x faster: missed; 0 bytes pushed: met"."""
        if self.goal is None:
            return ""
        parts = [f"{self.goal.main_text()}: {'met' if self.main_met else 'missed'}"]
        if self.goal.extra:
            parts.append(f"{self.goal.extra}: {'met' if self.extra_ok else 'missed'}")
        return "; ".join(parts)


def fmt_seconds(value: float) -> str:
    if value >= 10:
        return f"{value:.1f} s"
    if value >= 1:
        return f"{value:.2f} s"
    return f"{value * 1000:.0f} ms"


def fmt_bytes(value: float) -> str:
    if value <= 0:
        return "0 bytes"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value:.0f} bytes"


def markdown_table(results: Sequence[Result]) -> str:
    header = (
        f"| | scenario | project | builder: median (min{DASH}max) "
        f"| other side: median (min{DASH}max) | result | goal | |"
    )
    lines = [header, "|---|---|---|---|---|---|---|---|"]
    for r in results:
        mark = {True: "✅", False: "❌", None: ""}[r.met]
        result = "; ".join([f"**{r.statement()}**", *r.notes])
        lines.append(
            f"| {r.key} | {r.title} | {r.project} | {r.ours.cell()} "
            f"| {r.theirs.label}: {r.theirs.cell()} | {result} "
            f"| {r.goal.text() if r.goal else ''} | {mark} |"
        )
    return "\n".join(lines)


def progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
