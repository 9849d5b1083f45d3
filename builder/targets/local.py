"""`builder run`: build as `builder build` does, then run the container with docker-py.

The program's output streams to our stdout and stderr; builder's own lines go to stderr.
The token reaches the container as a read-only file, never in its environment or command.
Ctrl-C (or SIGTERM) stops the container; it is removed afterwards in every case.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from builder.errors import EngineError, UsageError

if TYPE_CHECKING:
    from builder.images.engine import Engine

CACHE_VOLUME = "builder-cache"
CACHE_MOUNT = "/var/cache/builder"
TOKEN_MOUNT = "/run/secrets/builder-token"
STOP_TIMEOUT = 10


@dataclass(frozen=True)
class RunOptions:
    command: tuple[str, ...] = ()
    network: str | None = None
    environment: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    cache_volume: str = CACHE_VOLUME


@dataclass(frozen=True)
class ContainerSpec:
    """Everything docker needs to start the run's container, with no secret in it."""

    image: str
    command: list[str]
    environment: dict[str, str]
    volumes: dict[str, dict[str, str]] = field(default_factory=dict)
    network: str | None = None
    token: str | None = None  # written to a file and mounted; never placed in the spec
    tmpfs: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)  # e.g. the run record's id


def parse_environment(items: Sequence[str], environ: Mapping[str, str]) -> dict[str, str]:
    """`-e K=V` or `-e K` (the value comes from our environment, as with docker run)."""
    result: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not key or any(c.isspace() for c in key):
            raise UsageError(f"-e {item!r}: expected KEY=VALUE")
        if key.startswith("BUILDER_"):
            raise UsageError(f"-e {key}: BUILDER_* variables are set by builder")
        if not sep:
            if key not in environ:
                continue
            value = environ[key]
        result[key] = value
    return result


def parse_volumes(items: Sequence[str]) -> dict[str, dict[str, str]]:
    """`-v SRC:DST[:ro|rw]`; SRC is a host path (made absolute) or a volume name."""
    result: dict[str, dict[str, str]] = {}
    for item in items:
        parts = item.split(":")
        if len(parts) not in (2, 3) or not parts[0] or not parts[1].startswith("/"):
            raise UsageError(f"-v {item!r}: expected SRC:DST[:ro] with an absolute DST")
        mode = parts[2] if len(parts) == 3 else "rw"
        if mode not in ("ro", "rw"):
            raise UsageError(f"-v {item!r}: mode must be ro or rw")
        source = parts[0]
        if "/" in source or source.startswith("."):
            source = str(Path(source).expanduser().resolve())
            if not Path(source).exists():
                raise UsageError(f"-v {item!r}: {source} does not exist")
        result[source] = {"bind": parts[1], "mode": mode}
    return result


def container_spec(
    image: str,
    plan: Any,
    settings: Any,
    repository_spec: dict[str, Any] | None,
    token: str | None,
    options: RunOptions,
    environ: Mapping[str, str],
) -> ContainerSpec:
    """The container for a plan: contract environment, user env and volumes, cache volume."""
    command = list(options.command or settings.command)
    if not command:
        raise UsageError("no command given: pass one after `--` or set `command` in builder.yaml")
    env = dict(settings.environment)
    env.update(parse_environment(options.environment, environ))
    reuse = None
    if plan.mode == "reuse":
        assert repository_spec is not None
        reuse = (plan.commit, plan.subdirectory, repository_spec)
    return contract_spec(
        image, command, env, parse_volumes(options.volumes), options.network,
        code_dir=settings.code_dir, reuse=reuse,
        verify_download=settings.verify_download, token=token,
        cache_volume=options.cache_volume,
    )


def contract_spec(
    image: str,
    command: list[str],
    environment: dict[str, str],
    volumes: dict[str, dict[str, str]],
    network: str | None,
    *,
    code_dir: str,
    reuse: tuple[str | None, str, dict[str, Any]] | None = None,
    verify_download: bool = False,
    token: str | None = None,
    cache_volume: str = CACHE_VOLUME,
) -> ContainerSpec:
    """The container contract on top of the user's environment and volumes.

    `reuse` is (commit, subdirectory, repository spec) when the entrypoint downloads the
    code, None when the code is baked into the image.
    """
    env = {**environment, "BUILDER_CODE_DIR": code_dir}
    volumes = dict(volumes)
    if reuse is None:
        return ContainerSpec(image, command, env, volumes, network)
    commit, subdirectory, repository_spec = reuse
    env.update(
        {
            "BUILDER_COMMIT": commit or "",
            "BUILDER_SUBDIRECTORY": subdirectory,
            "BUILDER_CODE_REPOSITORY": json.dumps(repository_spec, sort_keys=True),
            "BUILDER_CACHE_DIR": CACHE_MOUNT,
        }
    )
    if verify_download:
        env["BUILDER_VERIFY_DOWNLOAD"] = "1"
    if token:
        env["BUILDER_TOKEN_FILE"] = TOKEN_MOUNT
    volumes.setdefault(cache_volume, {"bind": CACHE_MOUNT, "mode": "rw"})
    # In reuse mode the code dir is filled at start: a tmpfs makes that copy ~6x faster than
    # the container's overlay file system. A baked image has its code there, so no mount.
    tmpfs = {code_dir: "exec,mode=755"}
    return ContainerSpec(image, command, env, volumes, network, token, tmpfs)


def build_for_run(path: str | Path, options: RunOptions, *, push: bool, no_reuse: bool,
                  store: Any, warn: Any, message: Any, environ: Mapping[str, str],
                  engine: Any = None, connect: Any = None,
                  defer_push: bool = False) -> tuple[Any, ContainerSpec]:
    """Build exactly as `builder build` does; return the result and the container to run.
    (`connect` and `defer_push`: see `build_project`.)"""
    from builder.images.build import build_project

    result = build_project(path, push=push, no_reuse=no_reuse, store=store, engine=engine,
                           connect=connect, warn=warn, defer_push=defer_push)
    for line in result.summary_lines():
        message(line)
    project = result.project
    repository = project.repository if project.plan.mode == "reuse" else None
    spec = container_spec(result.image, project.plan, project.settings, result.repository_spec,
                          repository.token if repository else None, options, environ)
    return result, spec


@dataclass(frozen=True)
class RunFiles:
    """This run's private directory and the token file in it (None without a token)."""

    directory: Path
    token: Path | None

    @property
    def labels(self) -> dict[str, str]:
        """The label that lets a later run find this run's container if this one is killed."""
        from builder.targets.orphans import owner_labels

        return owner_labels(self.directory)


@contextmanager
def run_files(token: str | None, home: Path) -> Iterator[RunFiles]:
    """A private directory for the life of the run, holding the token file; then removed.

    If the run is killed, the next run removes both the directory and the container
    (`remove_orphans`).
    """
    from builder.targets.orphans import run_directory

    with run_directory(home) as directory:
        path = None
        if token:
            path = directory / "token"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(token)
        yield RunFiles(directory, path)


def remove_orphans(engine: Engine, home: Path, log: Any) -> None:
    """Remove the containers, token files and run directories of killed runs of `home`.

    A killed run leaves its run directory behind (a run that ends removes its own), so the
    engine is asked for containers only when such a directory is there: a run after runs
    that ended makes no request for it.
    """
    from builder.targets.orphans import OWNER_LABEL, clear_run_directories, is_orphan, left_by

    if not left_by(home):
        return
    try:
        containers = engine.containers_labelled(OWNER_LABEL)
    except EngineError as exc:
        log(f"could not look for containers of killed runs: {exc}")
        containers = []
    for container, labels in containers:
        if is_orphan(labels, home):
            with suppress(EngineError):
                engine.remove_container(container)
                log(f"removed container {container[:12]}, left running by a killed run")
    clear_run_directories(home)


def run_container(engine: Engine, spec: ContainerSpec, token_path: Path | None, log: Any,
                  labels: Mapping[str, str] | None = None) -> int:
    """Start the container, stream its output, return its exit code; always remove it.

    SIGINT or SIGTERM stops the container (SIGTERM to the program, SIGKILL after
    STOP_TIMEOUT) from a side thread while the output keeps streaming, so the program's last
    lines and its own exit code still arrive. A second signal kills it at once.

    Five requests to the engine (`builder.images.engine`): create, attach, start, wait,
    remove.
    """
    volumes = dict(spec.volumes)
    if token_path is not None:
        volumes[str(token_path)] = {"bind": TOKEN_MOUNT, "mode": "ro"}
    container = engine.create_container(
        spec.image, spec.command, spec.environment, volumes, network=spec.network,
        tmpfs=spec.tmpfs, labels={"builder.run": "1", **spec.labels, **(labels or {})},
    )
    stopper = _Stopper(engine, container, log)
    handlers = {
        sig: signal.signal(sig, stopper.on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        # Attach before start so that no early output is lost.
        output = engine.attach(container)
        engine.start(container)
        _stream(output)
        return int(engine.wait(container))
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        try:
            engine.remove_container(container)
        except EngineError as exc:
            log(str(exc))


class _Stopper:
    def __init__(self, engine: Engine, container: str, log: Any) -> None:
        self.engine = engine
        self.container = container
        self.log = log
        self.signals = 0

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.signals += 1
        if self.signals == 1:
            self.log(f"stopping container {self.container[:12]} (again to kill it)")
            threading.Thread(target=self._call, args=(self.engine.stop, STOP_TIMEOUT),
                             daemon=True).start()
        else:
            threading.Thread(target=self._call, args=(self.engine.kill,), daemon=True).start()

    def _call(self, method: Any, *args: Any) -> None:
        with suppress(EngineError):
            method(self.container, *args)


def _stream(output: Iterator[tuple[bytes | None, bytes | None]]) -> None:
    for out, err in output:
        if out:
            sys.stdout.buffer.write(out)
            sys.stdout.buffer.flush()
        if err:
            sys.stderr.buffer.write(err)
            sys.stderr.buffer.flush()
