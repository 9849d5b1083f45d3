"""A run record: plain data, its JSON form, and how a person reads its outcome.

A record is written when a command starts (status `running`), completed with what was built
once the image is known, and finished with the exit code. A record whose owner process died
without finishing (kill -9, a lost machine) reads as `killed`. No field ever holds a secret:
the repository spec is the public one of the container contract, the environment is kept by
name only, and every text passes through `redact` before it is stored.
"""

from __future__ import annotations

import dataclasses
import datetime
from dataclasses import dataclass, field
from typing import Any

RUNNING = "running"
FINISHED = "finished"
KILLED = "killed"
EMITTED = "emitted"  # --target kubernetes --emit: the Job runs in a cluster, out of our sight
STATUSES = (RUNNING, FINISHED, KILLED, EMITTED)
KINDS = ("run", "build")
SHORT_ID = 12
RUN_ID_LABEL = "org.builder.run-id"  # on the container or service of a recorded run


@dataclass
class RunRecord:
    id: str
    kind: str
    started_at: float
    project_path: str
    target: str | None = None
    status: str = RUNNING
    ended_at: float | None = None
    exit_code: int | None = None
    error: str | None = None
    project_name: str | None = None
    command: list[str] = field(default_factory=list)
    mode: str | None = None
    reasons: list[str] = field(default_factory=list)
    code_repository: str | None = None
    repository_spec: dict[str, Any] | None = None
    commit: str | None = None
    subdirectory: str = ""
    dirty_files: list[str] = field(default_factory=list)
    content_hash: str | None = None
    checksum: str | None = None
    base_image: str | None = None
    image: str | None = None
    image_id: str | None = None
    image_digest: str | None = None  # the registry's manifest digest, when it has the image
    code_dir: str | None = None
    verify_download: bool = False
    network: str | None = None
    volumes: dict[str, dict[str, str]] = field(default_factory=dict)
    env_names: list[str] = field(default_factory=list)
    builder_version: str | None = None
    ci: dict[str, str] | None = None
    pid: int | None = None
    host: str | None = None
    rerun_of: str | None = None

    @property
    def short_id(self) -> str:
        return self.id[:SHORT_ID]

    @property
    def seconds(self) -> float | None:
        return None if self.ended_at is None else max(0.0, self.ended_at - self.started_at)

    @property
    def result(self) -> str:
        """`exit 0`, `exit 7`, `failed (1)`, `still running`, `killed` or `emitted`."""
        if self.status == RUNNING:
            return "still running"
        if self.status in (KILLED, EMITTED):
            return self.status
        if self.error is not None:
            return f"failed ({self.exit_code})"
        return f"exit {self.exit_code}"

    @property
    def pinned_image(self) -> str | None:
        """`registry/name@sha256:...`: the image as the registry keeps it, if it does."""
        if not (self.image and self.image_digest):
            return None
        from builder.images.names import split_ref

        return f"{split_ref(self.image)[0]}@{self.image_digest}"

    def to_json(self) -> dict[str, Any]:
        data = {item.name: getattr(self, item.name) for item in dataclasses.fields(self)}
        data["short_id"] = self.short_id
        data["result"] = self.result
        data["seconds"] = None if self.seconds is None else round(self.seconds, 3)
        data["started_at"] = iso_time(self.started_at)
        data["ended_at"] = None if self.ended_at is None else iso_time(self.ended_at)
        return data


def iso_time(stamp: float) -> str:
    moment = datetime.datetime.fromtimestamp(stamp, tz=datetime.timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def local_time(stamp: float) -> str:
    return datetime.datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M:%S")
