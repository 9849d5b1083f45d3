"""`builder run`'s fast path reads the usual options itself and leaves the rest to typer."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.cli.run_local import RunArguments, parse


def test_the_usual_options_are_read_as_typer_reads_them() -> None:
    parsed = parse(["proj", "--push", "--network", "host", "-e", "A=1", "--env=B=2",
                    "-v", "/a:/b:ro", "--volume", "cache:/c", "--no-reuse", "--target", "local",
                    "--", "python", "-m", "app", "--push"])
    assert parsed == RunArguments(Path("proj"), True, True, "host", ("A=1", "B=2"),
                                  ("/a:/b:ro", "cache:/c"), ("python", "-m", "app", "--push"))


def test_nothing_given_runs_the_project_here_with_its_own_command() -> None:
    assert parse([]) == RunArguments(Path("."), False, False, None, (), (), ())
    assert parse(["--", "true"]) == RunArguments(Path("."), False, False, None, (), (),
                                                 ("true",))


@pytest.mark.parametrize("args", [
    ["--help"], ["--target", "swarm"], ["--target=kubernetes", "--emit"], ["a", "b"],
    ["--network"], ["--network", "a", "--network", "b"], ["-eA=1"], ["--bogus"],
    ["--include-secret"],
], ids=["help", "swarm", "kubernetes", "two paths", "missing value", "two networks",
        "attached short value", "unknown option", "kubernetes option"])
def test_anything_else_is_left_to_typer(args: list[str]) -> None:
    assert parse(args) is None
