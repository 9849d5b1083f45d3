"""Running git: one narrow layer, with timeouts, no prompts, and redacted errors.

A command can be asked early (`ask_early`), before the caller knows that it will need the
answer: the first `start_git` or `git_answer` with the same arguments and directory (and no
extra environment or input) takes that process over. `forget_early` kills the ones nobody
took, so an early question never outlives the command that asked it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from builder.errors import GitError

# Fixed options for every call: no pager, no prompt, paths printed as they are.
_BASE = ("git", "-c", "core.quotepath=off", "-c", "color.ui=never")


def git_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """builder's environment for git, minus every variable that holds a secret builder knows
    (BUILDER_TOKEN, a `{{env.NAME}}` token): git gets credentials from builder, never from
    its environment, where `/proc/<pid>/environ` would show them."""
    env = dict(os.environ)
    env.pop("BUILDER_TOKEN", None)
    secrets = sys.modules.get("builder.state.secrets")  # not loaded: no secret known yet
    if secrets is not None:
        for key in [key for key, value in env.items() if secrets.holds_secret(value)]:
            del env[key]
    env["GIT_TERMINAL_PROMPT"] = "0"
    env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes -o ConnectTimeout=10")
    env["LC_ALL"] = "C"
    env.pop("GIT_DIR", None)
    env.pop("GIT_WORK_TREE", None)
    env.pop("GIT_INDEX_FILE", None)
    if extra:
        env.update(extra)
    return env


class GitProcess:
    """A git command started in the background; `result()` waits for it."""

    def __init__(self, args: Sequence[str], process: subprocess.Popen[bytes],
                 timeout: float | None, stdin: bytes | None = None) -> None:
        self.args = args
        self.process = process
        self.timeout = timeout
        self.stdin = stdin
        self._done: tuple[int, bytes, bytes] | None = None

    def wait(self) -> tuple[int, bytes, bytes]:
        """(exit code, stdout, stderr), once it has ended; kills it at its timeout."""
        if self._done is None:
            try:
                out, err = self.process.communicate(self.stdin, timeout=self.timeout)
            except subprocess.TimeoutExpired:
                _kill(self.process)
                raise GitError(
                    f"`git {' '.join(self.args[:2])}` timed out after {self.timeout:g} s"
                ) from None
            self._done = (self.process.returncode, out, err)
        return self._done

    def result(self) -> bytes:
        code, out, err = self.wait()
        if code != 0:
            from builder.state.secrets import redact

            message = err.decode("utf-8", "replace").strip().splitlines()
            detail = next((line for line in reversed(message) if line.strip()), "failed")
            raise GitError(redact(f"`git {' '.join(self.args[:2])}` failed: {detail}"))
        return out

    def kill(self) -> None:
        if self.process.poll() is None:
            _kill(self.process)
        elif self._done is None:
            self.process.communicate()


_early: dict[tuple[tuple[str, ...], str], GitProcess] = {}


def ask_early(args: Sequence[str], cwd: Path | str) -> GitProcess | None:
    """Start `git args` in `cwd` now, for a later `start_git` or `git_answer` to take over.

    None if it cannot start (no such directory, no git): the later call then says why.
    """
    key = (tuple(args), str(cwd))
    if key not in _early:
        try:
            _early[key] = _spawn(args, cwd, None, None, None)
        except OSError:
            return None
    return _early[key]


def forget_early() -> None:
    """Kill the early questions that nobody took over."""
    while _early:
        _early.popitem()[1].kill()


def _take_early(args: Sequence[str], cwd: Path | str) -> GitProcess | None:
    return _early.pop((tuple(args), str(cwd)), None) if _early else None


def _spawn(args: Sequence[str], cwd: Path | str, timeout: float | None,
           env: Mapping[str, str] | None, stdin: bytes | None,
           pass_fds: Sequence[int] = ()) -> GitProcess:
    process = subprocess.Popen(
        [*_BASE, *args],
        cwd=cwd,
        env=git_environment(env),
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        pass_fds=tuple(pass_fds),
    )
    return GitProcess(args, process, timeout, stdin)


def start_git(
    args: Sequence[str],
    cwd: Path | str,
    *,
    timeout: float | None = None,
    env: Mapping[str, str] | None = None,
    stdin: bytes | None = None,
    pass_fds: Sequence[int] = (),
) -> GitProcess:
    """Start git; `pass_fds` are descriptors it inherits (a `GitConfigFile`'s)."""
    if env is None and stdin is None and not pass_fds and (
            early := _take_early(args, cwd)) is not None:
        early.timeout = timeout
        return early
    return _spawn(args, cwd, timeout, env, stdin, pass_fds)


def run_git(
    args: Sequence[str],
    cwd: Path | str,
    *,
    timeout: float | None = None,
    env: Mapping[str, str] | None = None,
    stdin: bytes | None = None,
) -> bytes:
    return start_git(args, cwd, timeout=timeout, env=env, stdin=stdin).result()


def git_answer(args: Sequence[str], cwd: Path | str) -> tuple[int, bytes]:
    """Run a git command whose exit code is part of the answer: (code, stdout)."""
    early = _take_early(args, cwd)
    if early is not None:
        return early.wait()[:2]
    completed = subprocess.run(
        [*_BASE, *args],
        cwd=cwd,
        env=git_environment(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    return completed.returncode, completed.stdout


def git_ok(args: Sequence[str], cwd: Path | str) -> bool:
    """Run a git command whose exit status is the answer (e.g. merge-base --is-ancestor)."""
    return git_answer(args, cwd)[0] == 0


def split_z(output: bytes) -> list[str]:
    return [item.decode("utf-8", "surrogateescape") for item in output.split(b"\0") if item]


def _kill(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.communicate()


class CatFile:
    """One long-lived `git cat-file --batch`: ask for a blob, read it, ask for the next.

    `open` returns the blob's size and a stream of exactly that many bytes; the next request
    reads what the caller left of it. A missing object, or one that is not a blob, is a
    `GitError`. Use as a context manager: the process ends on exit.
    """

    def __init__(self, cwd: Path | str, env: Mapping[str, str] | None = None,
                 options: Sequence[str] = (), pass_fds: Sequence[int] = ()) -> None:
        import tempfile

        self._errors = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close())
        self._process = subprocess.Popen(
            [*_BASE, *options, "cat-file", "--batch"],
            cwd=cwd,
            env=git_environment(env),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._errors,
            start_new_session=True,
            pass_fds=tuple(pass_fds),
        )
        self._pending = 0  # bytes of the current blob (and its newline) not read yet

    def __enter__(self) -> CatFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self, oid: str) -> tuple[int, _BlobStream]:
        stdin, stdout = self._process.stdin, self._process.stdout
        assert stdin is not None and stdout is not None
        self._skip(self._pending)
        try:
            stdin.write(oid.encode("ascii") + b"\n")
            stdin.flush()
        except (BrokenPipeError, OSError):
            raise self._failure(oid) from None
        header = stdout.readline().split()
        if len(header) != 3 or header[0].decode("ascii", "replace") != oid:
            raise self._failure(oid, b" ".join(header).decode("ascii", "replace"))
        if header[1] != b"blob":
            raise GitError(f"git object {oid} is a {header[1].decode('ascii', 'replace')}, "
                           "not a blob")
        size = int(header[2])
        self._pending = size + 1
        return size, _BlobStream(self, size)

    def read(self, oid: str) -> bytes:
        size, stream = self.open(oid)
        return stream.read(size)

    def _take(self, size: int) -> bytes:
        stdout = self._process.stdout
        assert stdout is not None
        data = stdout.read(size)
        self._pending -= len(data)
        if len(data) < size:
            raise self._failure("", "the output ended early")
        return data

    def _skip(self, size: int) -> None:
        while size > 0:
            size -= len(self._take(min(size, 1 << 20)))

    def _failure(self, oid: str, detail: str = "") -> GitError:
        if detail.endswith("missing"):
            return GitError(f"git object {oid} is missing")
        from builder.state.secrets import redact

        self._errors.seek(0)
        message = self._errors.read().decode("utf-8", "replace").strip().splitlines()
        last = message[-1] if message else detail or "no answer"
        return GitError(redact(f"`git cat-file` failed{f' on {oid}' if oid else ''}: {last}"))

    def close(self) -> None:
        process = self._process
        if process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()
        if process.poll() is None:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                _kill(process)
        if process.stdout is not None:
            process.stdout.close()
        self._errors.close()


class _BlobStream:
    """The bytes of one blob from a `CatFile`, read as a file (tarfile copies from it)."""

    def __init__(self, owner: CatFile, size: int) -> None:
        self._owner = owner
        self._left = size

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        wanted = self._left if size < 0 else min(size, self._left)
        data = self._owner._take(wanted)
        self._left -= len(data)
        return data
