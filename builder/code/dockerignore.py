"""`.dockerignore` matching with Docker's semantics.

Reading follows moby's `ignorefile.ReadAll`: a UTF-8 BOM is dropped from the first line, a
line that starts with `#` (before trimming) is a comment, lines are trimmed of white space,
blank lines are skipped, each pattern is cleaned like Go's `filepath.Clean` and loses one
leading `/`, and `!` marks an exception. Matching follows moby's `patternmatcher`
(`MatchesOrParentMatches`): the last pattern that matches the path, or any of its parent
directories, decides; `*` and `?` never match `/`; `**` matches any number of directories;
`[...]` and `\\` behave as in Go's `filepath.Match`, which is also used to reject malformed
patterns.

Where moby's pattern-to-regexp translation has accidents, this module follows
`filepath.Match` instead: `*` or `?` inside brackets, a backslash before a letter (moby's regexp
reads `\\d` as a digit class) and a bare `^` in a wildcard pattern are taken literally.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from builder.errors import UsageError

IGNORE_FILE = ".dockerignore"

# The characters Go's unicode.IsSpace accepts (what strings.TrimSpace removes).
_GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007" \
    "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"

_EXACT, _PREFIX, _SUFFIX, _REGEXP = "exact", "prefix", "suffix", "regexp"


class _PatternError(ValueError):
    """A pattern that Go's filepath.Match rejects."""


class _Pattern(NamedTuple):
    text: str
    exclusion: bool
    regex: str


def go_clean(path: str) -> str:
    """Go's `path.Clean`: the shortest equivalent path, lexically."""
    rooted = path.startswith("/")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part != "..":
            parts.append(part)
        elif parts and parts[-1] != "..":
            parts.pop()
        elif not rooted:
            parts.append("..")
    body = "/".join(parts)
    if rooted:
        return "/" + body
    return body or "."


def _read_line(line: str) -> str | None:
    """One line as moby's ignorefile reader returns it, or None when it holds no pattern."""
    if line.startswith("#"):
        return None
    pattern = line.strip(_GO_SPACE)
    if not pattern:
        return None
    invert = pattern.startswith("!")
    if invert:
        pattern = pattern[1:].strip(_GO_SPACE)
    if pattern:
        pattern = go_clean(pattern)
        if len(pattern) > 1 and pattern.startswith("/"):
            pattern = pattern[1:]
    return "!" + pattern if invert else pattern


def _parse(line: str) -> _Pattern:
    """A pattern as moby's patternmatcher.New prepares it (it cleans again, then splits `!`)."""
    text = go_clean(line.strip(_GO_SPACE))
    exclusion = text.startswith("!")
    if exclusion:
        if len(text) == 1:
            raise _PatternError('illegal exclusion pattern: "!"')
        text = text[1:]
    return _Pattern(text, exclusion, _translate(text))


def _class_char(pattern: str, i: int) -> tuple[str, int]:
    """Go's getEsc: one possibly escaped character of a bracket expression."""
    if i >= len(pattern) or pattern[i] in "-]":
        raise _PatternError("malformed character class")
    if pattern[i] == "\\":
        i += 1
        if i >= len(pattern):
            raise _PatternError("unterminated character class")
    if i + 1 >= len(pattern):
        raise _PatternError("unterminated character class")
    return pattern[i], i + 1


def _bracket(pattern: str, i: int) -> tuple[str, int]:
    """Translate the bracket expression after the `[` at i - 1; return it and the next index."""
    negated = i < len(pattern) and pattern[i] == "^"
    if negated:
        i += 1
    ranges: list[str] = []
    count = 0
    while True:
        if i < len(pattern) and pattern[i] == "]" and count > 0:
            break
        low, i = _class_char(pattern, i)
        high = low
        if pattern[i] == "-":
            high, i = _class_char(pattern, i + 1)
        count += 1
        if low <= high:
            ranges.append(re.escape(low) if low == high else f"{re.escape(low)}-{re.escape(high)}")
    body = "".join(ranges)
    if not body:
        return (r"[\s\S]" if negated else "(?!)"), i + 1
    return f"[{'^' if negated else ''}{body}]", i + 1


def _translate(pattern: str) -> str:
    """A regular expression (for fullmatch) equivalent to moby's matcher for a cleaned pattern.

    moby sorts patterns into exact, prefix (`dir/**`), suffix (`**/name`) and regexp matches;
    the prefix and suffix kinds match more loosely than their regexp would (`**file` matches
    `dir/myfile`), so they are reproduced here as they are.
    """
    kind = _EXACT
    out: list[str] = []
    i = 0
    while i < len(pattern):
        start, char = i, pattern[i]
        i += 1
        if char == "*" and i < len(pattern) and pattern[i] == "*":
            i += 1
            if i < len(pattern) and pattern[i] == "/":
                i += 1
            if i < len(pattern):
                out.append("(?:.*/)?")
                kind = _REGEXP
            elif kind == _EXACT:
                kind = _PREFIX
            else:
                out.append(".*")
                kind = _REGEXP
            if start == 0:
                kind = _SUFFIX
        elif char in "*?":
            out.append("[^/]*" if char == "*" else "[^/]")
            kind = _REGEXP
        elif char == "\\":
            if i >= len(pattern):
                raise _PatternError("trailing backslash")
            out.append(re.escape(pattern[i]))
            i += 1
            kind = _REGEXP
        elif char == "[":
            bracket, i = _bracket(pattern, i)
            out.append(bracket)
            kind = _REGEXP
        elif char == "]":
            out.append(r"\]")
            kind = _REGEXP
        else:
            out.append(re.escape(char))
    if kind == _EXACT:
        return re.escape(pattern)
    if kind == _PREFIX:
        return re.escape(pattern[:-2]) + "(?s:.*)"
    if kind == _SUFFIX:
        suffix = pattern[2:]
        alternatives = "(?s:.*)" + re.escape(suffix)
        if suffix.startswith("/"):
            alternatives += "|" + re.escape(suffix[1:])
        return f"(?:{alternatives})"
    return "".join(out)


class DockerIgnore:
    """The patterns of one `.dockerignore` file, compiled once."""

    def __init__(self, patterns: list[_Pattern]) -> None:
        self._patterns = tuple(patterns)
        self._exclusion = tuple(pattern.exclusion for pattern in patterns)
        # Alternatives are tried in order, so with the patterns listed last-first the group that
        # matches is the last pattern that matches, the one that decides. Translated patterns
        # hold no capturing groups of their own, so group g is pattern len - g.
        combined = "|".join(
            f"({patterns[index].regex})" for index in reversed(range(len(patterns)))
        )
        self._regex = re.compile(combined) if patterns else None
        self._directory_cache: dict[str, int] = {}

    @classmethod
    def load(cls, project_dir: Path) -> DockerIgnore:
        """Read `project_dir/.dockerignore`; a missing file matches nothing."""
        path = Path(project_dir) / IGNORE_FILE
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return cls([])
        except OSError as exc:
            raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from exc
        text = data.decode("utf-8", errors="surrogateescape")
        return cls.from_lines(text.split("\n"), source=str(path))

    @classmethod
    def from_lines(cls, lines: Iterable[str], *, source: str = IGNORE_FILE) -> DockerIgnore:
        """Compile the lines of an ignore file; a bad pattern names `source` and its line."""
        patterns: list[_Pattern] = []
        for number, raw in enumerate(lines, start=1):
            line = raw.removesuffix("\r")
            if number == 1:
                line = line.removeprefix("\ufeff")
            pattern = _read_line(line)
            if pattern is None:
                continue
            try:
                patterns.append(_parse(pattern))
            except _PatternError as exc:
                raise UsageError(
                    f"{source}, line {number}: invalid pattern {line.strip()!r}: {exc}"
                ) from None
        return cls(patterns)

    @property
    def patterns(self) -> tuple[str, ...]:
        """The cleaned patterns, exceptions with their leading `!`."""
        return tuple(("!" if p.exclusion else "") + p.text for p in self._patterns)

    def __bool__(self) -> bool:
        return bool(self._patterns)

    def __repr__(self) -> str:
        return f"DockerIgnore({list(self.patterns)!r})"

    def excluded(self, relpath: str) -> bool:
        """Whether Docker leaves this path (posix, relative to the project) out of the context."""
        if self._regex is None:
            return False
        path = relpath
        if "//" in path or "/." in path or path[:1] in "./" or path[-1:] == "/":
            path = go_clean(path).lstrip("/")
            if path in (".", "..") or path.startswith("../"):
                return False
        deciding = self._deciding(path)
        return deciding >= 0 and not self._exclusion[deciding]

    def filter(self, relpaths: Iterable[str]) -> list[str]:
        """The paths that are not excluded, in their order."""
        if self._regex is None:
            return list(relpaths)
        excluded = self.excluded
        return [path for path in relpaths if not excluded(path)]

    def _deciding(self, path: str) -> int:
        """The index of the last pattern that matches `path` or a parent (-1 for none)."""
        assert self._regex is not None
        match = self._regex.fullmatch(path)
        deciding = -1 if match is None else len(self._exclusion) - (match.lastindex or 0)
        parent = path.rpartition("/")[0]
        if parent:
            inherited = self._directory_cache.get(parent)
            if inherited is None:
                inherited = self._directory_cache[parent] = self._deciding(parent)
            deciding = max(deciding, inherited)
        return deciding
