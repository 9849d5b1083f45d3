"""The base image's requirements: one list of text lines, and the files those lines name.

This is the one "requirements" input of the base image. What produces the lines (requirement
files today) is separate from how they are installed (builder.images.installers) and from
how a change is explained (builder.images.changes, which diffs these lines).

From requirement files the lines are each file's logical lines, in order, as pip reads them:
continuation lines joined, comments and blank lines dropped. A `-r FILE` line is replaced by
that file's lines (recursively); a `-c FILE` line names a constraints file, shipped beside the
list under a name taken from its content. So the input depends on what the files say, not on
what they are called or where the project lives, and a comment does not rebuild the image.
A `-r`/`-c` of a URL stays a line as written.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from builder.errors import SettingsError
from builder.state.settings import Settings

MAIN_FILE = "requirements.txt"
NAME_DIGITS = 20

_REFERENCE = re.compile(
    r"^(?P<opt>--requirement|--constraint|-r|-c)(?:\s*=\s*|\s+|)(?P<path>\S+)\s*$"
)
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
# pip's rule (pip._internal.req.req_file.COMMENT_RE): '#' at the start or after whitespace.
_COMMENT = re.compile(r"(^|\s+)#.*$")


@dataclass(frozen=True)
class Requirements:
    """The requirement lines, in order, and the constraint files they name."""

    lines: tuple[str, ...] = ()
    files: tuple[tuple[str, bytes], ...] = field(default=())  # (name beside the list, content)

    def __bool__(self) -> bool:
        return bool(self.lines)

    def text(self) -> bytes:
        """The list as one requirements file (installed as MAIN_FILE)."""
        return "".join(f"{line}\n" for line in self.lines).encode("utf-8")


def logical_lines(text: str) -> list[str]:
    """pip's logical lines: `\\`-continuations joined, comments and blank lines dropped."""
    lines: list[str] = []
    pending = ""
    for raw in [*text.splitlines(), ""]:
        if raw.endswith("\\") and not _COMMENT.match(raw):
            pending += raw[:-1]
            continue
        line = _COMMENT.sub("", pending + raw).strip()
        pending = ""
        if line:
            lines.append(line)
    return lines


def collect_requirements(settings: Settings,
                         names: tuple[str, ...] | None = None) -> Requirements:
    """Requirement files as one list of lines. `names` are the top files, relative to the
    project (default: builder.yaml's `requirements:`)."""
    collector = _Collector(settings)
    lines: list[str] = []
    for name in settings.requirements if names is None else names:
        path = settings.project_dir / name
        if not path.is_file():
            raise SettingsError(
                f"{settings.file}: key 'requirements': file {name!r} "
                f"not found in {settings.project_dir}"
            )
        lines += collector.lines(path.resolve(), ())
    return Requirements(tuple(lines), tuple(sorted(collector.constraints.items())))


class _Collector:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.constraints: dict[str, bytes] = {}
        self.named: dict[Path, str] = {}

    def lines(self, path: Path, stack: tuple[Path, ...]) -> list[str]:
        if path in stack:
            raise SettingsError(f"{path}: requirement files include each other in a cycle")
        result: list[str] = []
        for line in logical_lines(self._read(path, stack)):
            match = _REFERENCE.match(line)
            if match is None or _URL.match(match["path"]):
                result.append(line)
                continue
            included = (path.parent / match["path"]).resolve()
            if match["opt"] in ("-r", "--requirement"):
                result += self.lines(included, (*stack, path))
            else:
                result.append(f"-c {self._constraint(included, (*stack, path))}")
        return result

    def _constraint(self, path: Path, stack: tuple[Path, ...]) -> str:
        if path not in self.named:
            data = "".join(f"{line}\n" for line in self.lines(path, stack)).encode("utf-8")
            name = hashlib.sha256(data).hexdigest()[:NAME_DIGITS] + ".txt"
            self.constraints[name] = data
            self.named[path] = name
        return self.named[path]

    def _read(self, path: Path, stack: tuple[Path, ...]) -> str:
        try:
            return path.read_bytes().decode("utf-8")
        except FileNotFoundError:
            including = stack[-1] if stack else self.settings.file
            raise SettingsError(f"{including}: requirement file {str(path)!r} not found") from None
        except UnicodeDecodeError:
            raise SettingsError(f"{path}: requirement file is not UTF-8 text") from None
        except OSError as exc:
            raise SettingsError(f"{path}: cannot be read: {exc.strerror}") from None
