"""Real git repositories and the real `builder` CLI in a temp directory, for integration tests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
}


def logging_git(bin_dir: Path, log: Path) -> str:
    """A `git` in `bin_dir` that appends each command line to `log`, then runs the real git.

    Returns a PATH with `bin_dir` first.
    """
    real = shutil.which("git")
    assert real, "no git on PATH"
    bin_dir.mkdir(parents=True, exist_ok=True)
    wrapper = bin_dir / "git"
    wrapper.write_text(
        f"#!/bin/sh\nprintf '%s ' \"$@\" >> {log}\necho >> {log}\nexec {real} \"$@\"\n"
    )
    wrapper.chmod(0o755)
    return f"{bin_dir}{os.pathsep}{os.environ['PATH']}"


def git(cwd: Path, *args: str, check: bool = True) -> str:
    env = {**os.environ, **GIT_IDENTITY, "GIT_CONFIG_NOSYSTEM": "1"}
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if check and done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {done.stderr}")
    return done.stdout.strip()


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        assert self.code == 0, self.stderr
        return json.loads(self.stdout)


@dataclass
class GitWorld:
    """A temp directory holding BUILDER_HOME, bare remotes and working clones."""

    root: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def home(self) -> Path:
        return self.root / "home"

    def builder(
        self,
        *args: str,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 60,
    ) -> Result:
        full_env = {
            **os.environ,
            "BUILDER_HOME": str(self.home),
            **GIT_IDENTITY,
            **self.env,
            **(env or {}),
        }
        done = subprocess.run(
            [sys.executable, "-m", "builder", *args],
            cwd=cwd or self.root,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return Result(done.returncode, done.stdout, done.stderr)

    def bare(self, name: str) -> Path:
        path = self.root / "remotes" / f"{name}.git"
        path.parent.mkdir(parents=True, exist_ok=True)
        git(self.root, "init", "-q", "--bare", "-b", "main", str(path))
        return path

    def project(
        self,
        name: str = "work",
        remote: Path | str | None = None,
        files: dict[str, str] | None = None,
        subdirectory: str = "",
    ) -> Path:
        """A clone with builder.yaml (in `subdirectory`) committed and pushed to `remote`."""
        work = self.root / name
        git(self.root, "init", "-q", "-b", "main", str(work))
        project_dir = work / subdirectory if subdirectory else work
        project_dir.mkdir(parents=True, exist_ok=True)
        (project_dir / "builder.yaml").write_text("name: demo\n")
        for rel, content in (files or {"main.py": "print('hello')\n"}).items():
            target = project_dir / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
        git(work, "add", "-A")
        git(work, "commit", "-q", "-m", "initial")
        if remote is not None:
            git(work, "remote", "add", "origin", str(remote))
            git(work, "push", "-q", "-u", "origin", "main")
        return project_dir

    def status(self, path: Path, **kwargs: Any) -> dict[str, Any]:
        return self.builder("status", str(path), "--json", **kwargs).json()


def clone_served(server: Any, base: Path, files: dict[str, str], path: str = "team/app") -> Path:
    """Commit `files` to a new repository on a loopback server and clone it over HTTP.

    The clone's origin is the server (so status and pushes talk to it), authenticated with
    the server's token through `http.extraHeader`.
    """
    handle = server.create_repo(path)
    handle.commit(files, "v1")
    handle.push()
    project = base / "project"
    header = f"Authorization: Bearer {server.token}"
    git(base, "-c", f"http.extraHeader={header}", "clone", "-q",
        f"{server.url}/{path}.git", str(project))
    git(project, "config", "http.extraHeader", header)
    return project
