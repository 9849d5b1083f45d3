"""The benchmark's report: the README's generated block and the plot (docs/bench.png).

README.md's "## Benchmarks" section holds a block between `<!-- bench:start -->` and
`<!-- bench:end -->` that each full run rewrites; the prose around it is left alone. If the
section or the markers are missing, they are added (the section at the end of the file).
A run with `--network wan` writes its own block, between `<!-- bench-wan:start -->` and
`<!-- bench-wan:end -->`, and its own plot.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.bench.harness import DASH, TIMES, Result, markdown_table

START = "<!-- bench:start -->"
END = "<!-- bench:end -->"
SECTION = "## Benchmarks"
PLOT = Path("docs") / "bench.png"
WAN_PLOT = Path("docs") / "bench-wan.png"
WAN_MARKERS = ("<!-- bench-wan:start -->", "<!-- bench-wan:end -->")


def generated_block(
    results: Sequence[Result],
    machine: Mapping[str, str],
    reps: int,
    warmup: int,
    minutes: float,
    plot: Path | None,
    network: str | None = None,
) -> str:
    where = (f" Registry and code host behind an emulated WAN ({network}); the on-the-wire "
             f"columns are medians per run, round trips counted as sequential (parallel "
             f"ones once)." if network else "")
    command = "make bench NETWORK=wan" if network else "make bench"
    lines = [
        f"Measured {machine['date']} on {machine['cores']} cores ({machine['cpu']}), "
        f"{machine['memory']} of memory, Docker {machine['docker']}, Python "
        f"{machine['python']}: {reps} interleaved repetitions of each side after {warmup} "
        f"warm-up, medians with min{DASH}max; `{command}` took {minutes:.1f} minutes.{where}",
        "",
        markdown_table(results),
        "",
    ]
    if plot is not None:
        lines += [
            f"![builder against the other side: medians, min{DASH}max whiskers]({plot.as_posix()})",
            "",
        ]
    missed = [r for r in results if r.met is False]
    if missed:
        lines.append(
            "Goals missed in this run: "
            + "; ".join(
                f"**{r.key}** ({r.project.split(':')[0]}, {r.statement()}: {r.verdict()})"
                for r in missed
            )
            + "."
        )
    else:
        lines.append("Every goal was met in this run.")
    return "\n".join(lines)


def update_readme(readme: Path, block: str, start: str = START, end: str = END) -> None:
    """Put `block` between the markers of README's Benchmarks section; nothing else changes."""
    text = readme.read_text(encoding="utf-8")
    wrapped = f"{start}\n{block}\n{end}"
    if start in text and end in text and text.index(start) < text.index(end):
        before, rest = text.split(start, 1)
        after = rest.split(end, 1)[1]
        text = before + wrapped + after
    elif f"\n{SECTION}\n" in f"\n{text}":
        at = f"\n{text}".index(f"\n{SECTION}\n") + len(SECTION) + 1
        following = text.find("\n## ", at)
        end = len(text) if following < 0 else following
        text = text[:end].rstrip("\n") + f"\n\n{wrapped}\n" + text[end:]
    else:
        text = text.rstrip("\n") + f"\n\n{SECTION}\n\n{wrapped}\n"
    _write_atomically(readme, text)


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def plot(results: Sequence[Result], target: Path, machine: Mapping[str, str]) -> None:
    """Horizontal bars, builder against the other side, per row; log seconds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(reversed(results))
    height = 0.36
    fig, ax = plt.subplots(figsize=(11, 0.62 * len(rows) + 1.6))
    for index, result in enumerate(rows):
        for offset, series, color, name in (
            (height / 2, result.ours, "#1f77b4", "builder"),
            (-height / 2, result.theirs, "#9a9a9a", "other side"),
        ):
            errors = [[series.median - series.min], [series.max - series.median]]
            ax.barh(
                index + offset,
                series.median,
                height,
                color=color,
                xerr=errors,
                error_kw={"elinewidth": 1, "capsize": 2, "ecolor": "#333333"},
                label=name if index == 0 else None,
            )
            ax.text(
                series.max * 1.08,
                index + offset,
                series.label,
                va="center",
                fontsize=7,
                color="#444444",
            )
        mark = {True: " ✓", False: " ✗", None: ""}[result.met]
        ax.text(
            1.005,
            (index + 0.5) / len(rows),
            result.statement() + mark,
            transform=ax.transAxes,
            va="center",
            fontsize=8,
            color={True: "#2a7d2a", False: "#b22222", None: "#222222"}[result.met],
        )
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([f"{r.key}. {r.title}\n{r.project}" for r in rows], fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel(f"seconds (log scale): median, whiskers min{DASH}max")
    ax.set_ylim(-0.6, len(rows) - 0.4)
    low = min(min(r.ours.min, r.theirs.min) for r in rows)
    high = max(max(r.ours.max, r.theirs.max) for r in rows)
    ax.set_xlim(low / 1.6, high * 6)
    ax.grid(axis="x", which="both", alpha=0.25)
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title(
        f"builder against the conventional Docker workflow ({TIMES} = ratio of "
        f"medians) {DASH} {machine['date']}, {machine['cores']} cores",
        fontsize=10,
    )
    fig.subplots_adjust(
        left=0.25, right=0.8, top=1 - 0.6 / fig.get_figheight(), bottom=0.7 / fig.get_figheight()
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=110)
    plt.close(fig)
