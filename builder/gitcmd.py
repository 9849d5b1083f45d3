"""Running git: one narrow layer, with timeouts, no prompts, and redacted errors."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from builder.errors import GitError
from builder.secrets import redact

# Fixed options for every call: no pager, no prompt, paths printed as they are.
_BASE = ("git", "-c", "core.quotepath=off", "-c", "color.ui=never")


def git_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["GIT_TERMINAL_PROMPT"] = "0"
    env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes -o ConnectTimeout=10")
    env["LC_ALL"] = "C"
    env.pop("GIT_DIR", None)
    env.pop("GIT_WORK_TREE", None)
    env.pop("GIT_INDEX_FILE", None)
    if extra:
        env.update(extra)
    return env


@dataclass
class GitProcess:
    """A git command started in the background; `result()` waits for it."""

    args: Sequence[str]
    process: subprocess.Popen[bytes]
    timeout: float | None
    stdin: bytes | None = None

    def result(self) -> bytes:
        try:
            out, err = self.process.communicate(self.stdin, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            _kill(self.process)
            raise GitError(
                f"`git {' '.join(self.args[:2])}` timed out after {self.timeout:g} s"
            ) from None
        if self.process.returncode != 0:
            message = err.decode("utf-8", "replace").strip().splitlines()
            detail = next((line for line in reversed(message) if line.strip()), "failed")
            raise GitError(redact(f"`git {' '.join(self.args[:2])}` failed: {detail}"))
        return out


    def kill(self) -> None:
        if self.process.poll() is None:
            _kill(self.process)
        else:
            self.process.communicate()


def start_git(
    args: Sequence[str],
    cwd: Path | str,
    *,
    timeout: float | None = None,
    env: Mapping[str, str] | None = None,
    stdin: bytes | None = None,
) -> GitProcess:
    process = subprocess.Popen(
        [*_BASE, *args],
        cwd=cwd,
        env=git_environment(env),
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    return GitProcess(args, process, timeout, stdin)


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
