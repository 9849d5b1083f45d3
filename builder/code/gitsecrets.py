"""Handing a token to git without its environment, its command line or the disk.

The settings that carry the token (`http.<origin>.extraHeader`) are written to a memory-only
file (memfd) that git's processes inherit as a descriptor; the environment holds only
`include.path=/dev/fd/N`. `/proc/<pid>/environ` and `ps` therefore never show the token,
and nothing is left on disk when builder is killed: the file dies with its last process.
Where memfd does not exist, the settings go to a 0600 file in a private 0700 directory,
removed when the download ends.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Mapping, Sequence


class GitConfigFile:
    """git configuration that only the git processes given `fds` can read."""

    def __init__(self, settings: Sequence[tuple[str, str]]) -> None:
        text = "".join(_section(key, value) for key, value in settings).encode("utf-8")
        self.fds: tuple[int, ...] = ()
        self._directory: str | None = None
        if hasattr(os, "memfd_create"):
            fd = os.memfd_create("builder-git-config", os.MFD_CLOEXEC)
            os.write(fd, text)
            self.fds = (fd,)
            self.path = f"/dev/fd/{fd}"
        else:
            self._directory = tempfile.mkdtemp(prefix="builder-git-config-")
            self.path = os.path.join(self._directory, "config")
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(text)

    def environment(self, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        """GIT_CONFIG_* entries that make git read this file (after those in `environ`)."""
        env = os.environ if environ is None else environ
        try:
            count = int(env.get("GIT_CONFIG_COUNT", "0") or 0)
        except ValueError:
            count = 0
        return {
            f"GIT_CONFIG_KEY_{count}": "include.path",
            f"GIT_CONFIG_VALUE_{count}": self.path,
            "GIT_CONFIG_COUNT": str(count + 1),
        }

    def read(self) -> str:
        """The settings as git reads them (for tests and diagnostics)."""
        with open(self.path, encoding="utf-8") as handle:
            return handle.read()

    def close(self) -> None:
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds = ()
        if self._directory is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
                os.rmdir(self._directory)
            self._directory = None


def _section(key: str, value: str) -> str:
    """`a.b.c = v` as a config file entry: [a "b"] c = v (b may hold dots, as a URL does)."""
    section, _, rest = key.partition(".")
    subsection, _, name = rest.rpartition(".")
    quoted = subsection.replace("\\", "\\\\").replace('"', '\\"')
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    header = f'[{section} "{quoted}"]' if subsection else f"[{section}]"
    return f'{header}\n\t{name} = "{escaped}"\n'
