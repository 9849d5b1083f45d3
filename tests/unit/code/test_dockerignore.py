"""`.dockerignore` matching, checked against moby's patternmatcher tests and Docker's docs."""

from __future__ import annotations

import random
import re
import time
from pathlib import Path

import pytest

from builder.code.dockerignore import DockerIgnore, _parse, _read_line, go_clean
from builder.errors import UsageError

# moby/patternmatcher TestMatches, as MatchesOrParentMatches sees them: (pattern, path, match).
# Cases for the absolute path "/" and the Windows-only ones are left out.
MOBY_SINGLE = [
    ("**", "file", True),
    ("**", "file/", True),
    ("**/", "file", True),
    ("**/", "file/", True),
    ("**", "dir/file", True),
    ("**/", "dir/file", True),
    ("**", "dir/file/", True),
    ("**/", "dir/file/", True),
    ("**/**", "dir/file", True),
    ("**/**", "dir/file/", True),
    ("dir/**", "dir/file", True),
    ("dir/**", "dir/file/", True),
    ("dir/**", "dir/dir2/file", True),
    ("dir/**", "dir/dir2/file/", True),
    ("**/dir", "dir", True),
    ("**/dir", "dir/file", True),
    ("**/dir2/*", "dir/dir2/file", True),
    ("**/dir2/*", "dir/dir2/file/", True),
    ("**/dir2/**", "dir/dir2/dir3/file", True),
    ("**/dir2/**", "dir/dir2/dir3/file/", True),
    ("**file", "file", True),
    ("**file", "dir/file", True),
    ("**/file", "dir/file", True),
    ("**file", "dir/dir/file", True),
    ("**/file", "dir/dir/file", True),
    ("**/file*", "dir/dir/file", True),
    ("**/file*", "dir/dir/file.txt", True),
    ("**/file*txt", "dir/dir/file.txt", True),
    ("**/file*.txt", "dir/dir/file.txt", True),
    ("**/file*.txt*", "dir/dir/file.txt", True),
    ("**/**/*.txt", "dir/dir/file.txt", True),
    ("**/**/*.txt2", "dir/dir/file.txt", False),
    ("**/*.txt", "file.txt", True),
    ("**/**/*.txt", "file.txt", True),
    ("a**/*.txt", "a/file.txt", True),
    ("a**/*.txt", "a/dir/file.txt", True),
    ("a**/*.txt", "a/dir/dir/file.txt", True),
    ("a/*.txt", "a/dir/file.txt", False),
    ("a/*.txt", "a/file.txt", True),
    ("a/*.txt**", "a/file.txt", True),
    ("a[b-d]e", "ae", False),
    ("a[b-d]e", "ace", True),
    ("a[b-d]e", "aae", False),
    ("a[^b-d]e", "aze", True),
    (".*", ".foo", True),
    (".*", "foo", False),
    ("abc.def", "abcdef", False),
    ("abc.def", "abc.def", True),
    ("abc.def", "abcZdef", False),
    ("abc?def", "abcZdef", True),
    ("abc?def", "abcdef", False),
    ("**/foo/bar", "foo/bar", True),
    ("**/foo/bar", "dir/foo/bar", True),
    ("**/foo/bar", "dir/dir2/foo/bar", True),
    ("abc/**", "abc", False),
    ("abc/**", "abc/def", True),
    ("abc/**", "abc/def/ghi", True),
    ("**/.foo", ".foo", True),
    ("**/.foo", "bar.foo", False),
    ("a(b)c/def", "a(b)c/def", True),
    ("a(b)c/def", "a(b)c/xyz", False),
    ("a.|)$(}+{bc", "a.|)$(}+{bc", True),
    ("dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
     "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", True),
    ("dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", True),
    ("a\\\\", "a\\", True),
    ("a\\*b", "a*b", True),
    # moby's suffix kind matches by plain string suffix.
    ("**file", "dir/myfile", True),
]

# Go's filepath.Match cases that moby's TestMatch runs through its matcher.
GO_MATCH = [
    ("abc", "abc", True),
    ("*", "abc", True),
    ("*c", "abc", True),
    ("a*", "a", True),
    ("a*", "abc", True),
    ("a*", "ab/c", True),
    ("a*/b", "abc/b", True),
    ("a*/b", "a/c/b", False),
    ("a*b*c*d*e*/f", "axbxcxdxe/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", False),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", False),
    ("a*b?c*x", "abxbbxdbxebxczzx", True),
    ("a*b?c*x", "abxbbxdbxebxczzy", False),
    ("ab[c]", "abc", True),
    ("ab[b-d]", "abc", True),
    ("ab[e-g]", "abc", False),
    ("ab[^c]", "abc", False),
    ("ab[^b-d]", "abc", False),
    ("ab[^e-g]", "abc", True),
    ("a\\*b", "a*b", True),
    ("a\\*b", "ab", False),
    ("a?b", "a☺b", True),
    ("a[^a]b", "a☺b", True),
    ("a???b", "a☺b", False),
    ("a[^a][^a][^a]b", "a☺b", False),
    ("[a-ζ]*", "\u03b1", True),
    ("*[a-ζ]", "A", False),
    ("a?b", "a/b", False),
    ("a*b", "a/b", False),
    ("[\\]a]", "]", True),
    ("[\\-]", "-", True),
    ("[x\\-]", "x", True),
    ("[x\\-]", "-", True),
    ("[x\\-]", "z", False),
    ("[\\-x]", "x", True),
    ("[\\-x]", "-", True),
    ("[\\-x]", "a", False),
    ("*x", "xxx", True),
]

BAD_PATTERNS = ["[]a]", "[-]", "[x-]", "[-x]", "\\", "[a-b-c]", "[", "[^", "[^bc", "a[", "!"]

# (patterns, path, excluded): moby's multi-pattern cases, and Docker's documentation.
MULTI = [
    (["**", "!util/docker/web"], "util/docker/web/foo", False),
    (["**", "!util/docker/web", "util/docker/web/foo"], "util/docker/web/foo", True),
    (["**", "!dist/*.whl"], "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", False),
    (["!fileutils.go", "*.go"], "fileutils.go", True),
    (["*.go", "!fileutils.go"], "fileutils.go", False),
    (["docs", "!docs/README.md"], "docs/README.md", False),
    (["docs/", "!docs/README.md"], "docs/README.md", False),
    (["docs/*", "!docs/README.md"], "docs/README.md", False),
    (["docs", "!docs/README.md"], "docs/other.md", True),
    (["*/temp*"], "somedir/temporary.txt", True),
    (["*/temp*"], "somedir/temp/file.txt", True),
    (["*/temp*"], "temporary.txt", False),
    (["*/temp*"], "a/b/temporary.txt", False),
    (["*/*/temp*"], "somedir/subdir/temporary.txt", True),
    (["*/*/temp*"], "somedir/temporary.txt", False),
    (["temp?"], "tempa", True),
    (["temp?"], "tempb/file", True),
    (["temp?"], "temp", False),
    (["temp?"], "tempab", False),
    (["temp?"], "dir/tempa", False),
    (["**/*.go"], "main.go", True),
    (["**/*.go"], "a/b/c/main.go", True),
    (["**/*.go"], "a/b/c/main.got", False),
    (["*.md", "!README.md"], "README.md", False),
    (["*.md", "!README.md"], "CHANGES.md", True),
    (["*.md", "!README.md"], "docs/x.md", False),
    (["*.md", "!README*.md", "README-secret.md"], "README-secret.md", True),
    (["*.md", "!README*.md", "README-secret.md"], "README-public.md", False),
    (["*.md", "!README*.md", "README-secret.md"], "other.md", True),
    (["*.md", "README-secret.md", "!README*.md"], "README-secret.md", False),
    (["/leading"], "leading", True),
    (["/leading"], "leading/below", True),
    (["/leading"], "dir/leading", False),
    (["dir/**"], "dir", False),
    (["dir/**"], "dir/a/b", True),
    (["build/"], "build/lib/x.py", True),
    (["./build"], "build/x", True),
    (["a/../build"], "build/x", True),
    (["a//b"], "a/b", True),
    (["node_modules"], "node_modules/pkg/index.js", True),
    (["node_modules"], "src/node_modules/pkg/index.js", False),
    (["**/node_modules"], "src/node_modules/pkg/index.js", True),
    (["*.pyc", "!keep.pyc"], "keep.pyc", False),
    (["\\#notcomment"], "#notcomment", True),
    (["\\!bang"], "!bang", True),
    (["a\\?"], "a?", True),
    (["a\\?"], "ab", False),
    (["[[]x"], "[x", True),
    (["a]"], "a]", True),
]


def matches(pattern: str, path: str) -> bool:
    return DockerIgnore.from_lines([pattern]).excluded(path)


@pytest.mark.parametrize(("pattern", "path", "expected"), MOBY_SINGLE + GO_MATCH)
def test_single_pattern(pattern: str, path: str, expected: bool) -> None:
    assert matches(pattern, path) is expected


@pytest.mark.parametrize(("patterns", "path", "expected"), MULTI)
def test_pattern_lists(patterns: list[str], path: str, expected: bool) -> None:
    assert DockerIgnore.from_lines(patterns).excluded(path) is expected


@pytest.mark.parametrize("pattern", BAD_PATTERNS)
def test_malformed_pattern_names_file_and_line(pattern: str) -> None:
    with pytest.raises(UsageError) as caught:
        DockerIgnore.from_lines(["# comment", "ok", pattern])
    message = str(caught.value)
    assert ".dockerignore" in message
    assert "line 3" in message


def test_reader_follows_moby_ignorefile() -> None:
    content = "test1\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n! /inverted/abs/path\n"
    lines = [_read_line(line) for line in content.split("\n")]
    assert [line for line in lines if line is not None] == [
        "test1", "test2", "a/file/here", "lastfile", "!inverted/abs/path",
    ]


@pytest.mark.parametrize(("line", "expected"), [
    ("  spaced  ", "spaced"),
    ("\tdocs/\t", "docs"),
    (" # not a comment", "# not a comment"),
    ("#comment", None),
    ("   ", None),
    ("! spaced/../exception", "!exception"),
    ("dir/./sub//x/", "dir/sub/x"),
    ("../outside", "../outside"),
])
def test_line_reading(line: str, expected: str | None) -> None:
    assert _read_line(line) == expected


def test_comment_blank_bom_and_crlf() -> None:
    ignore = DockerIgnore.from_lines(["\ufeff*.log\r", "# *.py\r", "\r", "  \t", "!keep.log\r"])
    assert ignore.patterns == ("*.log", "!keep.log")
    assert ignore.excluded("a.log")
    assert not ignore.excluded("keep.log")
    assert not ignore.excluded("main.py")


def test_load_reads_the_project_file(tmp_path: Path) -> None:
    (tmp_path / ".dockerignore").write_bytes(b"\xef\xbb\xbf# c\r\n*.tmp\r\n!keep.tmp\n")
    ignore = DockerIgnore.load(tmp_path)
    assert ignore.filter(["a.tmp", "keep.tmp", "b.txt", "d/c.tmp"]) == ["keep.tmp", "b.txt",
                                                                       "d/c.tmp"]


def test_load_without_file_matches_nothing(tmp_path: Path) -> None:
    ignore = DockerIgnore.load(tmp_path)
    assert not ignore
    assert not ignore.excluded("anything")
    assert ignore.filter(["b", "a"]) == ["b", "a"]


def test_load_error_names_the_file_and_line(tmp_path: Path) -> None:
    (tmp_path / ".dockerignore").write_text("ok\n\n[unterminated\n")
    with pytest.raises(UsageError, match=r"\.dockerignore, line 3: invalid pattern"):
        DockerIgnore.load(tmp_path)


def test_bool_and_patterns() -> None:
    assert not DockerIgnore.from_lines(["", "# only comments"])
    ignore = DockerIgnore.from_lines(["/a/", "!b"])
    assert ignore
    assert ignore.patterns == ("a", "!b")


@pytest.mark.parametrize(("path", "expected"), [
    ("./build/x", True),
    ("build//x", True),
    ("/build/x", True),
    ("src/../build/x", True),
    ("build/", True),
    (".", False),
    ("", False),
])
def test_paths_are_cleaned(path: str, expected: bool) -> None:
    assert DockerIgnore.from_lines(["build"]).excluded(path) is expected


@pytest.mark.parametrize(("path", "expected"), [
    ("", "."), ("a/b/..", "a"), ("/../a", "/a"), ("a/../../b", "../b"), ("//a//b/", "/a/b"),
    ("./", "."), ("a/./b/.", "a/b"),
])
def test_go_clean(path: str, expected: str) -> None:
    assert go_clean(path) == expected


def _moby_reference(patterns: list[str], path: str) -> bool:
    """moby's MatchesOrParentMatches loop, one pattern at a time."""
    compiled = [_parse(pattern) for pattern in patterns]
    parents = path.split("/")[:-1]
    matched = False
    for pattern in compiled:
        if pattern.exclusion != matched:
            continue
        regex = re.compile(pattern.regex)
        hit = regex.fullmatch(path) is not None or any(
            regex.fullmatch("/".join(parents[: i + 1])) for i in range(len(parents))
        )
        if hit:
            matched = not pattern.exclusion
    return matched


def test_combined_matcher_agrees_with_moby_loop() -> None:
    rng = random.Random(7)
    pool = ["a", "b", "*.py", "a/*", "**/b", "!a/b", "!**/*.py", "a/**", "?", "[ab]",
            "!b", "b/*/c", "**", "!a", "c*", "!*/c"]
    alphabet = ["a", "b", "c", "x.py", "c.py"]
    for _ in range(300):
        patterns = rng.sample(pool, rng.randint(1, 6))
        ignore = DockerIgnore.from_lines(patterns)
        for _ in range(20):
            path = "/".join(rng.choice(alphabet) for _ in range(rng.randint(1, 4)))
            assert ignore.excluded(path) is _moby_reference(patterns, path), (patterns, path)


def test_fast_on_ten_thousand_paths() -> None:
    patterns = ["*.pyc", "**/__pycache__", ".git", "build/", "dist/**", "*/temp*",
                "docs/*.md", "!docs/README.md", "**/*.log", "node_modules"]
    rng = random.Random(1)
    dirs = ["src", "src/pkg", "src/pkg/sub", "docs", "tests/unit", "build", "a/b/c/d",
            "node_modules/x", "src/__pycache__"] + [f"pkg{i}/sub/deep" for i in range(300)]
    names = ["main.py", "x.pyc", "README.md", "notes.md", "temp1", "app.log", "data.json"]
    paths = [f"{rng.choice(dirs)}/{i}{rng.choice(names)}" for i in range(10_000)]
    best = float("inf")
    for _ in range(5):
        ignore = DockerIgnore.from_lines(patterns)
        started = time.perf_counter()
        kept = ignore.filter(paths)
        best = min(best, time.perf_counter() - started)
    assert 0 < len(kept) < len(paths)
    assert best < 0.1, f"filtering 10,000 paths took {best * 1000:.0f} ms"
