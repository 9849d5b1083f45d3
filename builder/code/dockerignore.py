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
from collections.abc import Callable, Iterable
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
    regex: str  # moby's meaning, as a regular expression (for fullmatch)
    fast: str | None  # the same, in a form Python's backtracking matches in linear time
    automaton: _Automaton | None  # where no such form exists: matched state by state


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
    regex, tokens = _translate(text)
    if tokens is None:
        return _Pattern(text, exclusion, regex, regex, None)
    fast = _linear_regex(tokens)
    return _Pattern(text, exclusion, regex, fast, None if fast else _Automaton(tokens))


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


#: A translated pattern, one token per step: a literal character, one character of a class
#: (`?`, `[...]`), or a loop: `*` (`[^/]*`), `**` inside a pattern (`(?:.*/)?`) or `**` at
#: its end (`.*`).
_Token = tuple[str, str]
_LITERAL, _ONE, _STAR, _DIRS, _ANY = "literal", "one", "star", "dirs", "any"
_TOKEN_REGEX = {_STAR: "[^/]*", _DIRS: "(?:.*/)?", _ANY: ".*"}
_LOOPS = frozenset(_TOKEN_REGEX)


def _translate(pattern: str) -> tuple[str, list[_Token] | None]:
    """A regular expression (for fullmatch) equivalent to moby's matcher for a cleaned
    pattern, and its tokens when it is a general wildcard pattern (None for the kinds below).

    moby sorts patterns into exact, prefix (`dir/**`), suffix (`**/name`) and regexp matches;
    the prefix and suffix kinds match more loosely than their regexp would (`**file` matches
    `dir/myfile`), so they are reproduced here as they are. Their regular expressions have a
    single loop, so they are matched in linear time as they are.
    """
    kind = _EXACT
    tokens: list[_Token] = []
    i = 0
    while i < len(pattern):
        start, char = i, pattern[i]
        i += 1
        if char == "*" and i < len(pattern) and pattern[i] == "*":
            i += 1
            if i < len(pattern) and pattern[i] == "/":
                i += 1
            if i < len(pattern):
                tokens.append((_DIRS, ""))
                kind = _REGEXP
            elif kind == _EXACT:
                kind = _PREFIX
            else:
                tokens.append((_ANY, ""))
                kind = _REGEXP
            if start == 0:
                kind = _SUFFIX
        elif char in "*?":
            tokens.append((_STAR, "") if char == "*" else (_ONE, "[^/]"))
            kind = _REGEXP
        elif char == "\\":
            if i >= len(pattern):
                raise _PatternError("trailing backslash")
            tokens.append((_LITERAL, pattern[i]))
            i += 1
            kind = _REGEXP
        elif char == "[":
            bracket, i = _bracket(pattern, i)
            tokens.append((_ONE, bracket))
            kind = _REGEXP
        elif char == "]":
            tokens.append((_LITERAL, "]"))
            kind = _REGEXP
        else:
            tokens.append((_LITERAL, char))
    if kind == _EXACT:
        return re.escape(pattern), None
    if kind == _PREFIX:
        return re.escape(pattern[:-2]) + "(?s:.*)", None
    if kind == _SUFFIX:
        suffix = pattern[2:]
        alternatives = "(?s:.*)" + re.escape(suffix)
        if suffix.startswith("/"):
            alternatives += "|" + re.escape(suffix[1:])
        return f"(?:{alternatives})", None
    return "".join(_token_regex(token) for token in tokens), tokens


def _token_regex(token: _Token) -> str:
    kind, value = token
    if kind == _LITERAL:
        return re.escape(value)
    return value if kind == _ONE else _TOKEN_REGEX[kind]


def _linear_regex(tokens: list[_Token]) -> str | None:
    """The pattern as a regular expression that Python's backtracking engine matches in
    time linear in the path, or None when it has no such form (then `_Automaton` matches it).

    A loop that cannot give anything back is made possessive or atomic: `[^/]*` before a `/`
    or at the end (it must take the whole path segment), `.*` at the end, and `(?:.*/)?` when
    nothing after it can match a `/` (it must end at the last one). Backtracking into the one
    loop left is then linear, provided no loop follows it (which would be run again for each
    of its choices).
    """
    parts: list[str] = []
    free = None  # the index of the loop that may backtrack
    for index, token in enumerate(tokens):
        kind = token[0]
        rest = tokens[index + 1:]
        regex = _token_regex(token)
        if kind in _LOOPS and free is not None:
            return None  # a loop after the backtracking one
        if kind == _STAR and (not rest or rest[0] == (_LITERAL, "/")):
            regex = "[^/]*+"
        elif kind == _ANY and not rest:
            regex = ".*+"
        elif kind == _DIRS and not any(_may_match_slash(other) for other in rest):
            regex = "(?>(?:.*/)?)"
        elif kind in _LOOPS:
            free = index
        parts.append(regex)
    return "".join(parts)


def _may_match_slash(token: _Token) -> bool:
    kind, value = token
    if kind == _LITERAL:
        return value == "/"
    if kind == _ONE:
        return re.fullmatch(value, "/") is not None
    return kind != _STAR


class _Automaton:
    """A pattern matched by simulating its automaton: time linear in the path, whatever the
    pattern (as Go's regexp, which moby uses, guarantees). State sets are remembered per
    character, so repeated paths cost a lookup per character."""

    _MAX_REMEMBERED = 4096

    def __init__(self, tokens: list[_Token]) -> None:
        self.final = len(tokens)
        # state -> [(character test, next state)]; epsilon moves apart
        self.moves: dict[int, list[tuple[_Test, int]]] = {}
        self.epsilon: dict[int, list[int]] = {}
        for index, (kind, value) in enumerate(tokens):
            after = index + 1
            if kind == _LITERAL:
                self._move(index, _Test.literal(value), after)
            elif kind == _ONE:
                self._move(index, _Test.regex(value), after)
            elif kind == _STAR:
                self._move(index, _Test.not_slash(), index)
                self.epsilon.setdefault(index, []).append(after)
            elif kind == _ANY:
                self._move(index, _Test.not_newline(), index)
                self.epsilon.setdefault(index, []).append(after)
            else:  # (?:.*/)? through a state of its own for the `.*`
                inside = -1 - index
                self.epsilon.setdefault(index, []).extend((after, inside))
                self._move(inside, _Test.not_newline(), inside)
                self._move(inside, _Test.literal("/"), after)
        self.start = self._closure({0})
        self._steps: dict[tuple[frozenset[int], str], frozenset[int]] = {}
        # The runs of literal characters: a path (or a prefix of it) can match only if it
        # holds each of them, which most paths do not: those need no simulation at all.
        runs = "".join(value if kind == _LITERAL else "\0" for kind, value in tokens)
        self.required = tuple(run for run in runs.split("\0") if run)

    def _move(self, state: int, test: _Test, target: int) -> None:
        self.moves.setdefault(state, []).append((test, target))

    def _closure(self, states: set[int]) -> frozenset[int]:
        pending = list(states)
        found = set(states)
        while pending:
            for target in self.epsilon.get(pending.pop(), ()):
                if target not in found:
                    found.add(target)
                    pending.append(target)
        return frozenset(found)

    def fullmatch(self, path: str) -> bool:
        return len(path) in self.accepted_prefixes(path, {len(path)})

    def accepted_prefixes(self, path: str, lengths: set[int]) -> list[int]:
        """Which of the prefixes of `path` with these lengths the pattern matches: one pass."""
        current = self.start
        found = [0] if 0 in lengths and self.final in current else []
        if any(run not in path for run in self.required):
            return found
        steps = self._steps
        for position, char in enumerate(path, start=1):
            key = (current, char)
            following = steps.get(key)
            if following is None:
                reached = {target for state in current for test, target in
                           self.moves.get(state, ()) if test(char)}
                following = self._closure(reached)
                if len(steps) >= self._MAX_REMEMBERED:
                    steps.clear()
                steps[key] = following
            if not following:
                break
            current = following
            if position in lengths and self.final in current:
                found.append(position)
        return found


class _Test:
    """A test of one character."""

    def __init__(self, test: Callable[[str], bool]) -> None:
        self.test = test

    def __call__(self, char: str) -> bool:
        return self.test(char)

    @classmethod
    def literal(cls, value: str) -> _Test:
        return cls(value.__eq__)

    @classmethod
    def regex(cls, value: str) -> _Test:
        compiled = re.compile(value)
        return cls(lambda char: compiled.fullmatch(char) is not None)

    @classmethod
    def not_slash(cls) -> _Test:
        return cls(lambda char: char != "/")

    @classmethod
    def not_newline(cls) -> _Test:
        return cls(lambda char: char != "\n")


def _read_inside(path: Path, root: Path) -> bytes:
    """The file's bytes, if it is a regular file in the tree: a symlink is followed only to a
    file inside `root` (a link out of the tree is never read, so none of its lines can show up
    in an error), and a FIFO or device is never opened."""
    import os
    import stat

    if stat.S_ISLNK(os.lstat(path).st_mode):
        real, top = os.path.realpath(path), os.path.realpath(root)
        if os.path.commonpath([real, top]) != top:
            raise UsageError(f"{path} is a symlink to a file outside the project: builder "
                             "does not follow it; put the patterns in the file itself")
        path = Path(real)
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UsageError(f"{path} is not a regular file")
        return handle.read()


class DockerIgnore:
    """The patterns of one `.dockerignore` file, compiled once."""

    def __init__(self, patterns: list[_Pattern]) -> None:
        self._patterns = tuple(patterns)
        self._exclusion = tuple(pattern.exclusion for pattern in patterns)
        # Alternatives are tried in order, so with the patterns listed last-first the group that
        # matches is the last pattern that matches, the one that decides. Translated patterns
        # hold no capturing groups of their own, so each group stands for one pattern.
        linear = [index for index in reversed(range(len(patterns))) if patterns[index].fast]
        combined = "|".join(f"({patterns[index].fast})" for index in linear)
        self._regex = re.compile(combined) if linear else None
        self._group_pattern = [-1, *linear]
        self._automata = [(index, pattern.automaton) for index, pattern in
                          reversed(list(enumerate(patterns))) if pattern.automaton is not None]
        self._directory_cache: dict[str, int] = {}

    @classmethod
    def load(cls, project_dir: Path) -> DockerIgnore:
        """Read `project_dir/.dockerignore`; a missing file matches nothing."""
        path = Path(project_dir) / IGNORE_FILE
        try:
            data = _read_inside(path, Path(project_dir))
        except FileNotFoundError:
            return cls([])
        except OSError as exc:
            raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from None
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
        if not self._patterns:
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
        if not self._patterns:
            return list(relpaths)
        excluded = self.excluded
        return [path for path in relpaths if not excluded(path)]

    def _deciding(self, path: str) -> int:
        """The index of the last pattern that matches `path` or a parent (-1 for none).

        The parents' answers are remembered; the ones not known yet are worked out from the
        nearest known one down, without recursion (a path can be thousands of levels deep).
        An automaton answers for the path and all its parents in one pass.
        """
        cache = self._directory_cache
        unknown = []
        parent = path.rpartition("/")[0]
        while parent and parent not in cache:
            unknown.append(parent)
            parent = parent.rpartition("/")[0]
        automata: dict[int, int] = {}  # prefix length -> last automaton pattern matching it
        if self._automata:
            lengths = {len(directory) for directory in unknown} | {len(path)}
            for index, automaton in self._automata:
                for length in automaton.accepted_prefixes(path, lengths):
                    automata.setdefault(length, index)
        inherited = cache[parent] if parent else -1
        for directory in reversed(unknown):
            own = max(self._regex_match(directory), automata.get(len(directory), -1))
            inherited = cache[directory] = max(own, inherited)
        return max(self._regex_match(path), automata.get(len(path), -1), inherited)

    def _regex_match(self, path: str) -> int:
        """The index of the last linear pattern that matches `path` itself (-1 for none)."""
        if self._regex is None:
            return -1
        match = self._regex.fullmatch(path)
        return -1 if match is None else self._group_pattern[match.lastindex or 0]
