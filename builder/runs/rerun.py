"""`builder runs rerun ID`: exactly the code of a recorded run, run again on the local engine.

Exactly means the same image, by id (or by the registry's digest), and in reuse mode the same
commit contract (repository spec, commit, subdirectory), whatever the checkout looks like now.
builder.yaml is not read again: the record holds what the container needs. The token comes
from the repository's current registration, as it would for a new run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from builder.errors import BuilderError, UsageError
from builder.runs.records import RunRecord
from builder.targets.local import ContainerSpec, contract_spec, parse_environment

if TYPE_CHECKING:
    from builder.images.engine import Engine
    from builder.state.store import Store

Log = Callable[[str], None]
# What a rerun inherits from the run it repeats: the same code, so the same facts.
INHERITED = (
    "project_name", "mode", "reasons", "code_repository", "repository_spec", "commit",
    "subdirectory", "dirty_files", "content_hash", "checksum", "base_image", "image",
    "image_id", "image_digest", "code_dir", "verify_download", "network", "volumes",
)


def inherited_facts(record: RunRecord) -> dict[str, Any]:
    return {name: getattr(record, name) for name in INHERITED}


def rerun_spec(
    record: RunRecord,
    command: Sequence[str],
    *,
    engine: Engine,
    store: Store,
    environ: Mapping[str, str],
    log: Log,
    warn: Log,
) -> ContainerSpec:
    """The container that runs the record's code again (`command`, else the recorded one)."""
    if not record.image or not record.code_dir or not record.mode:
        raise UsageError(
            f"run {record.short_id} has no image to run again: it ended ({record.result}) "
            "before its image was built"
        )
    image = locate_image(engine, record, log)
    argv = list(command) or list(record.command)
    if not argv:
        raise UsageError(f"run {record.short_id} recorded no command: give one after `--`")
    environment = parse_environment(record.env_names, environ)
    if record.mode != "reuse":
        return contract_spec(image, argv, environment, record.volumes, record.network,
                             code_dir=record.code_dir)
    if not record.repository_spec or not record.commit:
        raise BuilderError(f"run {record.short_id} ran in reuse mode but its record has no "
                           "repository or commit")
    token = current_token(store, record, warn)
    return contract_spec(
        image, argv, environment, record.volumes, record.network,
        code_dir=record.code_dir,
        reuse=(record.commit, record.subdirectory, record.repository_spec),
        verify_download=record.verify_download, token=token,
    )


def locate_image(engine: Engine, record: RunRecord, log: Log) -> str:
    """The run's image: by id in the local engine, else pulled by digest from its registry."""
    if record.image_id and engine.inspect(record.image_id):
        return record.image_id
    pinned = record.pinned_image
    if pinned:
        log(f"image {_short(record.image_id)} is not in the local engine: pulling {pinned}")
        reason = engine.pull(pinned)
        data = engine.inspect(pinned) if reason is None else None
        if data:
            if record.image_id and data.get("Id") != record.image_id:
                raise BuilderError(
                    f"{pinned} is image {_short(data.get('Id'))}, not run {record.short_id}'s "
                    f"image {_short(record.image_id)}"
                )
            return pinned
        if reason and not _looks_absent(reason):
            raise BuilderError(f"cannot pull {pinned} for run {record.short_id}: {reason}")
    raise BuilderError(gone_message(record))


def gone_message(record: RunRecord) -> str:
    """Where the image went, what it held, and how to make it again."""
    where = (f"nor does its registry have {record.pinned_image}" if record.pinned_image
             else "and it was never pushed to a registry")
    head = (f"the image of run {record.short_id} is gone: {record.image} "
            f"({_short(record.image_id)}) is not in the local engine, {where}")
    commit = (record.commit or "")[:12]
    path = record.project_path
    if record.mode == "reuse":
        how = (f"it ran commit {commit} of code repository {record.code_repository!r} on base "
               f"image {record.base_image}; to run that commit again, rebuild its base image "
               f"with `git -C {path} checkout {commit}` and `builder run {path}` (a new image, "
               "so a new run)")
    else:
        files = ", ".join(record.dirty_files[:5]) + (" ..." if len(record.dirty_files) > 5 else "")
        changes = f" with uncommitted changes to {files}" if files else ""
        how = (f"it baked commit {commit or '(none)'}{changes} (content hash "
               f"{(record.content_hash or '')[:16]}); to rebuild it, put those files back on "
               f"that commit and run `builder build {path}`")
    return (f"{head}; {how}. Push images (`builder build --push` with `registry:` in "
            "builder.yaml) to keep them for reruns")


def current_token(store: Store, record: RunRecord, warn: Log) -> str | None:
    """The token of the run's repository as registered now (None if it is not registered)."""
    from builder.repositories.types import instantiate

    spec = record.repository_spec or {}
    name = str(spec.get("name") or record.code_repository or "")
    registered = store.get_repository(name) if name else None
    if registered is None:
        warn(f"code repository {name!r} is no longer registered: the container gets no token")
        return None
    if registered.type != spec.get("type") or dict(registered.config) != spec.get("config"):
        warn(f"code repository {name!r} was registered again with other options since run "
             f"{record.short_id}; the rerun keeps the recorded ones")
    return instantiate(registered, Path(record.project_path)).token


def _looks_absent(reason: str) -> bool:
    lowered = reason.lower()
    return any(text in lowered for text in ("not found", "manifest unknown", "does not exist"))


def _short(image_id: str | None) -> str:
    return (image_id or "no image id")[:19]
