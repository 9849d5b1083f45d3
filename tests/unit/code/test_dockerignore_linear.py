"""`.dockerignore` matching takes time linear in the path whatever the pattern, as Docker's
own matcher (Go's regexp) does, and means exactly what moby's regular expressions mean."""

from __future__ import annotations

import random
import re
import time

import pytest

from builder.code.dockerignore import DockerIgnore

# Patterns that make a backtracking matcher take exponential or polynomial time.
HOSTILE = [
    "*a*a*a*a*a*a*a*a*a*b",
    "**/**/**/**/**/**/**/**/x",
    "*?*?*?*?*?*?*?*?*?z",
    "a**/a**/a**/a**/a**/b",
    "*[a]*[a]*[a]*[a]*[a]*[a]*c",
    "**/a*/**/a*/**/a*/**/a*/b",
]


@pytest.mark.parametrize("pattern", HOSTILE)
def test_a_hostile_pattern_against_long_paths_is_answered_at_once(pattern):
    ignore = DockerIgnore.from_lines([pattern])
    paths = ["a" * 4000, "/".join(["a" * 3] * 1000), "a" * 200 + "/" + "ab" * 1500,
             "/".join(["a"] * 2000)]
    started = time.perf_counter()
    answers = [ignore.excluded(path) for path in paths]
    took = time.perf_counter() - started
    assert answers == [False] * len(paths)
    assert took < 2.0, f"{pattern!r} took {took:.1f} s on paths of 4,000 characters"


def test_a_path_deeper_than_the_recursion_limit():
    ignore = DockerIgnore.from_lines(["**/leaf", "!d/d/keep"])
    deep = "/".join(["d"] * 3000)
    assert ignore.excluded(deep + "/leaf")
    assert not ignore.excluded(deep + "/other")


POOL = ["*", "?", "a", "b", "/", "**", "**/", "[ab]", "[^a]", "[a-c]", "\\*", ".", "x"]


def _random_pattern(rng: random.Random) -> str:
    from builder.code.dockerignore import _parse

    while True:
        text = "".join(rng.choice(POOL) for _ in range(rng.randint(1, 7))).strip("/") or "a"
        try:
            _parse(text)
        except ValueError:
            continue
        return text


def _random_path(rng: random.Random) -> str:
    return "".join(rng.choice("ab/x.\n") for _ in range(rng.randint(1, 9))).strip("/") or "a"


def test_the_automaton_and_the_linear_regexes_mean_what_moby_means():
    """Every form builder matches with agrees with the plain translation of moby's regexp."""
    from builder.code.dockerignore import _Automaton, _parse, _translate

    rng = random.Random(20)
    checked = 0
    for _ in range(3000):
        pattern = _parse(_random_pattern(rng))
        _regex, tokens = _translate(pattern.text)
        reference = re.compile(pattern.regex)
        automaton = _Automaton(tokens) if tokens is not None else None
        fast = re.compile(pattern.fast) if pattern.fast else None
        for _ in range(10):
            path = _random_path(rng)
            expected = reference.fullmatch(path) is not None
            if automaton is not None:
                assert automaton.fullmatch(path) is expected, (pattern.text, path)
                checked += 1
            if fast is not None:
                assert (fast.fullmatch(path) is not None) is expected, (pattern.text, path)
    assert checked > 10_000
