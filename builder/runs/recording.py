"""The hook each command wraps itself in: a record at the start, facts once built, the end.

    with recorded(home, kind="run", target="local", path=path, command=...) as recording:
        result = build_project(...)
        recording.built(result, engine, image=spec.image)
        code = run_container(..., labels=recording.labels())
        recording.finish(code)

The record says `running` from the first moment, under a lock the process holds (see
`owners`), so a command killed at any point leaves a record that reads `killed`. A failure
records its exit code and one line; a usage error (exit 2) is bad input, not a run, and
leaves no record.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from builder.errors import BuilderError
from builder.runs.ci import ci_context
from builder.runs.database import RunDatabase
from builder.runs.owners import Owner
from builder.runs.records import EMITTED, FINISHED, RUN_ID_LABEL, RunRecord
from builder.runs.retention import keep_limit
from builder.state.secrets import redact

if TYPE_CHECKING:
    from builder.images.build import BuildResult
    from builder.images.engine import Engine
    from builder.targets.local import ContainerSpec

MAX_DIRTY_FILES = 1000
INTERRUPTED = 130


class Recording:
    """One command's record, from start to finish."""

    def __init__(self, database: RunDatabase, record: RunRecord, owner: Owner) -> None:
        self.database = database
        self.record = record
        self.owner = owner
        self.done = False

    @property
    def id(self) -> str:
        return self.record.id

    @classmethod
    def start(
        cls,
        home: Path,
        *,
        kind: str,
        path: str | Path,
        target: str | None = None,
        command: Sequence[str] = (),
        env_names: Sequence[str] = (),
        rerun_of: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Recording:
        from builder.images.wheelhouse import builder_identity

        env = os.environ if environ is None else environ
        record = RunRecord(
            id=os.urandom(16).hex(),
            kind=kind,
            target=target,
            started_at=time.time(),
            project_path=str(Path(path).resolve()),
            command=list(command),
            env_names=sorted(set(env_names)),
            builder_version=builder_identity(),
            ci=ci_context(env),
            pid=os.getpid(),
            host=socket.gethostname(),
            rerun_of=rerun_of,
        )
        database = RunDatabase(home, keep=keep_limit(env))
        owner = Owner(database.directory, record.id)
        try:
            database.open()
            owner.acquire()  # before the record exists, so that no reader takes it for dead
            database.insert(record)
        except BaseException:
            owner.release()
            database.close()
            raise
        return cls(database, record, owner)

    def labels(self) -> dict[str, str]:
        """The label that ties a container or service to this record."""
        return {RUN_ID_LABEL: self.id}

    def update(self, **fields: Any) -> None:
        for name, value in fields.items():
            setattr(self.record, name, value)
        self.database.update(self.id, **fields)

    def built(self, result: BuildResult, engine: Engine,
              spec: ContainerSpec | None = None) -> None:
        """What was built: the plan's facts, the image's id and registry digest, and (for a
        run) the container as it runs: its image (a swarm pins `ref@sha256:...`), command,
        network and volumes. A build records the project's default command."""
        facts = build_facts(result, engine, spec.image if spec is not None else None)
        if spec is not None:
            from builder.targets.local import CACHE_MOUNT

            facts["command"] = list(spec.command)
            facts["network"] = spec.network
            facts["volumes"] = {source: bind for source, bind in spec.volumes.items()
                                if bind.get("bind") != CACHE_MOUNT}
        elif not self.record.command:
            facts["command"] = list(result.project.settings.command)
        self.update(**facts)

    def finish(self, exit_code: int, *, error: str | None = None, status: str = FINISHED) -> None:
        if self.done:
            return
        self.done = True
        try:
            self.database.update(
                self.id, status=status, exit_code=exit_code, ended_at=time.time(),
                error=None if error is None else _one_line(error),
            )
        finally:
            self.owner.release()
            self.database.close()

    def emitted(self) -> None:
        """`--target kubernetes --emit`: the manifests are out; the cluster runs the Job."""
        self.finish(0, status=EMITTED)

    def fail(self, exc: BaseException) -> None:
        """Record how the command ended on `exc`; a usage error removes the record."""
        if self.done:
            return
        if isinstance(exc, BuilderError) and exc.exit_code == 2:
            self.discard()
        elif isinstance(exc, BuilderError):
            self.finish(exc.exit_code, error=str(exc))
        elif isinstance(exc, KeyboardInterrupt):
            self.finish(INTERRUPTED, error="interrupted")
        elif isinstance(exc, SystemExit) or hasattr(exc, "exit_code"):
            code = getattr(exc, "exit_code", None)
            if code is None:
                code = exc.code if isinstance(exc, SystemExit) else 1
            self.finish(code if isinstance(code, int) else 1)
        else:
            self.finish(1, error=f"{type(exc).__name__}: {exc}")

    def discard(self) -> None:
        if self.done:
            return
        self.done = True
        try:
            self.database.delete(self.id)
        finally:
            self.owner.release()
            self.database.close()


@contextlib.contextmanager
def recorded(home: Path, **start: Any) -> Iterator[Recording]:
    """`Recording.start(home, **start)` for the block; a block that ends without `finish`
    finishes with exit code 0, one that raises records how it failed."""
    recording = Recording.start(home, **start)
    try:
        yield recording
    except BaseException as exc:
        recording.fail(exc)
        raise
    recording.finish(0)


def build_facts(result: BuildResult, engine: Engine, image: str | None = None) -> dict[str, Any]:
    project = result.project
    plan = project.plan
    settings = project.settings
    image_id, digest = image_identity(engine, result.image, image)
    return {
        "project_name": settings.name,
        "mode": plan.mode,
        "reasons": list(plan.reasons),
        "code_repository": plan.code_repository,
        "repository_spec": result.repository_spec if plan.mode == "reuse" else None,
        "commit": plan.commit,
        "subdirectory": plan.subdirectory,
        "dirty_files": list(plan.dirty_files[:MAX_DIRTY_FILES]),
        "content_hash": result.content_hash,
        "checksum": result.checksum,
        "base_image": result.base_image,
        "image": result.image,
        "image_id": image_id,
        "image_digest": digest,
        "code_dir": settings.code_dir,
        "verify_download": settings.verify_download,
    }


def image_identity(engine: Engine, ref: str,
                   pinned: str | None = None) -> tuple[str | None, str | None]:
    """The local image id, and the registry's manifest digest when the registry has it.

    The engine lists a digest under RepoDigests once the image was pushed to, or pulled from,
    a registry; a pinned reference (`ref@sha256:...`) carries it already.
    """
    data = engine.inspect(ref) or {}
    image_id = data.get("Id")
    digest = pinned.partition("@")[2] if pinned and "@" in pinned else None
    if not digest:
        from builder.images.names import split_ref

        repository = split_ref(ref)[0]
        for item in data.get("RepoDigests") or []:
            name, _, value = str(item).partition("@")
            if name == repository and value:
                digest = value
                break
    return (str(image_id) if image_id else None), digest


def _one_line(text: str) -> str:
    return redact(" ".join(text.split()))[:2000] or "failed"
