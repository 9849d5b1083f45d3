"""The container's warm start: the commit's tree is in the cache, so copy it and exec.

This runs at every container start, before anything else of builder is imported, so it uses
plain `os` calls and few modules (no dataclasses, pathlib or shutil: on a small machine their
imports alone cost more than the copy; builder's errors load only on a failure). When the
cache cannot answer at once, or anything is unusual, `warm_start` returns and
`builder.container.entrypoint` does the whole job, with its checks and messages. The cache key
and the copy are defined here and used by both.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import sys
from collections.abc import Mapping, Sequence

CACHE_LAYOUT = "v2"  # v2: entries are sealed (builder.container.cache)
VERIFY_VALUES = ("1", "true", "yes")
_HEX = frozenset("0123456789abcdef")


def cache_key(repository: Mapping[str, object], commit: str | None, subdirectory: str) -> str:
    """The cache entry of a repository's tree at `commit`; with None, its newest entry."""
    from hashlib import sha256

    identity = {
        "layout": CACHE_LAYOUT,
        "type": repository["type"],
        "config": repository.get("config") or {},
        "commit": commit,
        "subdirectory": subdirectory,
    }
    return sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:32]


def is_commit_hash(value: str) -> bool:
    return 7 <= len(value) <= 64 and set(value) <= _HEX


def contract_subdirectory(environ: Mapping[str, str]) -> str | None:
    """BUILDER_SUBDIRECTORY without its slashes; None when it leaves the repository."""
    value = environ.get("BUILDER_SUBDIRECTORY", "").strip("/")
    return None if ".." in value.split("/") else value


def warm_start(command: Sequence[str], environ: Mapping[str, str]) -> None:
    """Copy the cached tree into the empty code dir mount and exec; return if it cannot."""
    commit = environ.get("BUILDER_COMMIT", "").strip()
    cache_dir = environ.get("BUILDER_CACHE_DIR", "")
    code_dir = environ.get("BUILDER_CODE_DIR", "")
    subdirectory = contract_subdirectory(environ)
    if not (cache_dir and code_dir and command and is_commit_hash(commit)):
        return
    if subdirectory is None:
        return
    try:
        repository = json.loads(environ.get("BUILDER_CODE_REPOSITORY", ""))
    except ValueError:
        return
    if not isinstance(repository, dict) or not {"type", "name"} <= set(repository):
        return
    if environ.get("BUILDER_VERIFY_DOWNLOAD", "") in VERIFY_VALUES:
        return  # the entry is checked against its seal first: the full entrypoint does it
    cached = os.path.join(cache_dir, cache_key(repository, commit, subdirectory))
    if not is_real_directory(cached) or not is_empty_mount(code_dir):
        return
    project_dir = environ.get("BUILDER_PROJECT_DIR", "")
    project = None
    if project_dir:
        from builder.project.install import read_sidecar

        known, project = read_sidecar(cached)
        if not known:  # the tree was never described: the entrypoint does it
            return
    try:
        from builder.container.codedir import mark

        mark(code_dir)
        copy_tree(cached, code_dir)
    except OSError as exc:
        reason = exc.strerror or exc
        raise _error(f"cannot copy the cached code into {code_dir}: {reason}") from None
    if project is not None:
        from builder.project.install import write

        try:
            write(project, code_dir, project_dir)
        except OSError as exc:
            reason = exc.strerror or exc
            raise _error(f"cannot write the project's install into {project_dir}: {reason}") \
                from None
    exec_command(command, code_dir, environ)


def is_empty_mount(path: str | os.PathLike[str]) -> bool:
    """An empty mount point (the tmpfs `builder run` gives the container): the copy goes
    straight into it, as it is private to this container and cannot be renamed over."""
    return os.path.ismount(path) and not os.listdir(path)


def is_real_directory(path: str) -> bool:
    """A directory itself, not a symlink to one (a cache entry must be)."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def copy_tree(source: str, destination: str) -> None:
    """Copy the files, symlinks and directories below `source` into the existing directory
    `destination`, with their modes and modification times. Iterative, however deep the
    tree; links are copied as links, never followed; anything else is an error."""
    finished: list[tuple[str, os.stat_result]] = []  # directories, for their final metadata
    pending = [(source, destination)]
    while pending:
        folder, target_folder = pending.pop()
        with os.scandir(folder) as scan:
            entries = list(scan)
        for entry in entries:
            target = os.path.join(target_folder, entry.name)
            info = entry.stat(follow_symlinks=False)
            if stat.S_ISLNK(info.st_mode):
                os.symlink(os.readlink(entry.path), target)
                os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns), follow_symlinks=False)
            elif stat.S_ISDIR(info.st_mode):
                os.mkdir(target, 0o700)
                pending.append((entry.path, target))
                finished.append((target, info))
            elif stat.S_ISREG(info.st_mode):
                _copy_file(entry.path, target, info)
            else:
                raise OSError(errno.EINVAL, "not a file, directory or symlink", entry.path)
    for target, info in reversed(finished):
        os.chmod(target, info.st_mode & 0o7777)
        os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns))


def _copy_file(source: str, target: str, info: os.stat_result) -> None:
    reader = os.open(source, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        writer = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            offset = 0
            while offset < info.st_size:
                sent = os.sendfile(writer, reader, offset, info.st_size - offset)
                if sent == 0:
                    break
                offset += sent
            os.fchmod(writer, info.st_mode & 0o777)
            os.utime(writer, ns=(info.st_atime_ns, info.st_mtime_ns))
        finally:
            os.close(writer)
    finally:
        os.close(reader)


def exec_command(command: Sequence[str], code_dir: str, environ: Mapping[str, str]) -> None:
    """Replace this process with the user's command, run in the code dir."""
    if not command:
        raise _error("no command to run: pass one after `--` or set `command` in builder.yaml",
                     usage=True)
    env = dict(environ)
    env.pop("BUILDER_TOKEN", None)
    existing = env.get("PYTHONPATH")
    env["PYTHONPATH"] = code_dir + (os.pathsep + existing if existing else "")
    os.chdir(code_dir)
    coredump = sys.modules.get("builder.state.coredump")
    if coredump is not None:  # builder turned core dumps off: the program gets its own limit
        coredump.restore_for_exec()
    try:
        os.execvpe(command[0], list(command), env)
    except FileNotFoundError:
        raise _error(f"command not found: {command[0]}") from None
    except PermissionError:
        raise _error(f"command is not executable: {command[0]}") from None


def _error(message: str, *, usage: bool = False) -> Exception:
    """builder's error for `message`; builder.errors is loaded only when something fails."""
    from builder.errors import BuilderError, UsageError

    return UsageError(message) if usage else BuilderError(message)


def is_fast_path(argv: Sequence[str]) -> bool:
    """`builder entrypoint ...` runs at every container start: it skips the CLI framework."""
    return bool(argv) and argv[0] == "entrypoint" and not ({"--help", "-h"} & set(argv[1:2]))


def command_from_argv(argv: Sequence[str]) -> list[str]:
    rest = list(argv[1:])
    return rest[1:] if rest[:1] == ["--"] else rest
