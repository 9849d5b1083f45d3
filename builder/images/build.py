"""`builder build`: plan, then find or build the base image, then (bake) the code image.

Each image is looked up in the local engine, then in the registry (if one is configured),
and built only when neither has it (`builder.images.lookup`). A bake puts the code in
layers on the base image in proportion to the change (`builder.images.bake`).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from builder.decide.planning import (
    ProjectPlan,
    describe_project,
    plan_json,
    plan_project,
    project_json,
)
from builder.errors import BuildError, UsageError
from builder.images import increment, names
from builder.images.changes import base_changes, describe_change, load_record, save_record
from builder.images.dockerfile import label_instruction
from builder.images.engine import Engine, build_network
from builder.images.inputs import BaseRecipe, gather_base, registered_repositories
from builder.images.install_step import PATHS
from builder.images.lookup import ImageBuilds, Source, image_lock
from builder.images.parent import resolve_parent
from builder.images.progress import Progress, default_progress
from builder.images.wheelhouse import builder_identity, ensure_wheelhouse
from builder.repositories.types import public_spec
from builder.state.atomic import atomic_write_bytes
from builder.state.store import Store

LABEL_PREFIX = names.LABEL_PREFIX


@dataclass
class BuildResult:
    project: ProjectPlan
    checksum: str
    base_image: str
    image: str
    built: list[str] = field(default_factory=list)
    pushed: list[str] = field(default_factory=list)
    seconds: float = 0.0
    content_hash: str | None = None
    repository_spec: dict[str, Any] | None = None
    installed: dict[str, Any] | None = None  # the project installed beside the code
    sources: dict[str, Source] = field(default_factory=dict)
    base_changes: list[dict[str, Any]] = field(default_factory=list)
    pending_push: Callable[[], list[str]] | None = None  # `defer_push`: what `push` runs

    def push(self) -> list[str]:
        """Push what a `defer_push` build left to push; return what was pushed."""
        if self.pending_push is not None:
            self.pushed, self.pending_push = self.pending_push(), None
        return self.pushed

    @property
    def mode(self) -> str:
        return self.project.plan.mode

    def summary_lines(self) -> list[str]:
        """What was decided and built, for the person at the terminal."""
        built = ", ".join(self.built) or "nothing"
        pushed = f"; pushed {', '.join(self.pushed)}" if self.pushed else ""
        lines = [f"builder: {self.mode}: {self.image} (built {built}{pushed}; "
                 f"{self.seconds:.2f} s)"]
        return lines + [f"builder:   - {reason}" for reason in self.project.plan.reasons]

    def to_json(self) -> dict[str, Any]:
        return {**plan_json(self.project.plan, checksum=self.checksum,
                            base_image=self.base_image, image=self.image, built=self.built,
                            pushed=self.pushed, seconds=self.seconds,
                            dependencies=self.project.dependencies,
                            base_changes=self.base_changes),
                "project": project_json(self.installed)}


def build_project(path: str | Path, *, push: bool = False, no_reuse: bool = False,
                  store: Store | None = None, engine: Engine | None = None,
                  connect: Callable[[], Engine] | None = None,
                  progress: Progress | None = None,
                  warn: Callable[[str], None] | None = None,
                  defer_push: bool = False) -> BuildResult:
    """`connect` gives the engine when it is needed (e.g. `Engine.connect_soon()`: connected
    while git answers); the caller then closes it. With `defer_push`, nothing is pushed
    here: `result.push` does it (e.g. while the container runs)."""
    started = time.perf_counter()
    store = store or Store.default()
    progress = progress or default_progress()
    project = plan_project(path, no_reuse=no_reuse, store=store, warn=warn)
    settings = project.settings
    installed = describe_project(settings)  # a project that cannot be installed fails here
    registry = names.registry_for(settings)
    if push and not registry:
        raise UsageError(f"--push needs a registry: set `registry:` in {settings.file} "
                         f"or {names.REGISTRY_ENV}")
    increments = increment.allowed_increments()
    own_engine = engine is None and connect is None
    engine = engine or (connect or Engine.connect)()
    try:
        parent = resolve_parent(engine, settings.parent_image, store.home,
                                settings_file=settings.file, log=progress.note)
        if project.dependencies is not None:
            progress.note(f"dependencies: {project.dependencies.describe()}")
        recipe = gather_base(settings, parent,
                             registered_repositories(project.repositories, store),
                             source=project.dependencies, cache=store.home / "cache" / "uv-export")
        base = names.base_ref(settings.name, registry, recipe.checksum)
        previous = load_record(store.home, settings.project_dir)
        changes = []
        before = None
        if previous is not None and previous.get("checksum") != recipe.checksum:
            changes = base_changes(previous, recipe.record)
            for change in changes:
                progress.note(f"base image inputs changed: {describe_change(change)}")
            if isinstance(previous.get("checksum"), str) and increments \
                    and all(change["input"] == "requirements" for change in changes):
                before = Previous(names.base_ref(settings.name, registry, previous["checksum"]),
                                  previous["checksum"], increments)
        builds = ImageBuilds(engine, store.home, registry, progress)
        labels = _labels(project, recipe.checksum)
        builds.ensure(base, "base image", lambda: _build_base(engine, recipe, base, store.home,
                                                              labels, progress, before))
        save_record(store.home, settings.project_dir,
                    {"checksum": recipe.checksum, **recipe.record})
        result = BuildResult(project, recipe.checksum, base, base, installed=installed,
                             base_changes=changes)
        if project.plan.mode == "bake":
            from builder.images.bake import bake, plan_bake

            plan = plan_bake(settings.project_dir, _checkout(project))
            install = (installed, recipe.project_dir) \
                if recipe.project_dir and installed is not None else None
            result.image = bake(builds, plan, name=settings.name, registry=registry,
                                checksum=recipe.checksum, base=base,
                                code_dir=settings.code_dir, labels=labels, force=no_reuse,
                                install=install)
            result.content_hash = plan.content_hash
        elif project.plan.code_repository:
            record = store.get_repository(project.plan.code_repository)
            result.repository_spec = public_spec(record) if record else None
        result.built = builds.built
        result.sources = builds.sources
        if push and defer_push:
            result.pending_push = builds.push_all
        elif push:
            result.pushed = builds.push_all()
    finally:
        if own_engine:
            engine.close()
    result.seconds = time.perf_counter() - started
    return result


def _checkout(project: ProjectPlan) -> tuple[Path, str, list[str]] | None:
    """The checkout's top level, commit, and what git reports changed (asked for the facts)."""
    from builder.repositories.git_context import Checkout

    checkout = Checkout.discover(project.settings.project_dir)
    if checkout is None or checkout.head is None or not project.facts.has_commits:
        return None
    return checkout.root, checkout.head, checkout.shipped_changes


def _labels(project: ProjectPlan, checksum: str) -> dict[str, str]:
    plan = project.plan
    facts = project.facts
    dirty = facts.dirty if facts.has_commits else True
    return {
        LABEL_PREFIX + "role": "base",
        LABEL_PREFIX + "checksum": checksum,
        LABEL_PREFIX + "commit": plan.commit or "",
        LABEL_PREFIX + "repository": plan.code_repository or "",
        LABEL_PREFIX + "dirty": "true" if dirty else "false",
        LABEL_PREFIX + "version": builder_identity(),
    }


def _build_base(engine: Engine, recipe: BaseRecipe, ref: str, home: Path,
                labels: dict[str, str], progress: Progress, previous: Previous | None) -> None:
    wheels = ensure_wheelhouse(home, recipe.parent.target, recipe.needs.extras,
                               (*recipe.needs.pip, *recipe.installer.tool_requirements()),
                               log=progress.note)
    base_labels = {**labels, LABEL_PREFIX + "parent": recipe.parent.name,
                   increment.FRAME: recipe.frame}
    started = time.perf_counter()
    progress.start(f"building base image {ref} (FROM {recipe.parent.name}, "
                   f"installer {recipe.installer.name})")
    try:
        # With a local engine the host's cache is the mounted one: the tools go there once.
        # Otherwise they are handed in and the step keeps them in the engine host's cache.
        cache = download_cache(home)
        hand_in = not (engine.is_local() and keep_tools(recipe, wheels, cache))
        image = None
        prior = _prior_base(engine, recipe, previous, progress)
        if prior is not None:
            image = _update(engine, recipe, prior, wheels, cache, hand_in, base_labels,
                            progress, ref)
        if image is None:
            image = recipe.parent.id
            if recipe.inputs.apt_packages:
                with recipe.prefix_context().to_file() as tar:
                    image = engine.build(tar, tag=None, progress=progress,
                                         network_mode=build_network())
            image = _runtime(engine, recipe, image, wheels, home, progress, hand_in)
            marker = _marker()
            with recipe.requirement_files(wheels, cache_owner(), tools=hand_in,
                                          marker=marker).to_file() as files:
                image = engine.run_commit(
                    image, recipe.install.requirements, files=files,
                    mounts={str(cache): PATHS.cache},
                    changes=lambda reports: [*recipe.install.changes, label_instruction(
                        {**base_labels, **increment.report_labels(reports, 0)})],
                    progress=progress, network_mode=build_network(), what=ref,
                    message=f"builder: requirements ({recipe.installer.name})", report=marker)
        engine.tag(image, ref)
    except BaseException:
        progress.fail(f"building {ref} failed")
        raise
    progress.finish(f"built {ref} in {time.perf_counter() - started:.1f} s")


@dataclass(frozen=True)
class Previous:
    """The project's previous base, as its record names it; builder.images.increment."""

    ref: str
    checksum: str
    increments: int  # how many bases may follow a fresh one


def _prior_base(engine: Engine, recipe: BaseRecipe, previous: Previous | None,
                progress: Progress) -> increment.PreviousBase | None:
    if previous is None or not recipe.install.update:
        return None
    data = engine.inspect(previous.ref)
    if data is None:
        progress.note(f"the previous base {previous.ref} is not in the local engine")
        return None
    prior, why = increment.previous_base(data, previous.ref, frame=recipe.frame,
                                         checksum=previous.checksum, limit=previous.increments)
    if prior is None:
        progress.note(f"not building on the previous base: {why}")
    return prior


def _update(engine: Engine, recipe: BaseRecipe, prior: increment.PreviousBase, wheels: Path,
            cache: Path, hand_in: bool, labels: dict[str, str], progress: Progress,
            ref: str) -> str | None:
    """The requirements step on the previous base; None (and why, as a note) when it did
    not make the base."""
    step = prior.increment + 1
    progress.note(f"updating the requirements of the previous base {prior.ref} "
                  f"(step {step} from a fresh base)")
    marker = _marker()

    def changes(reports: list[str]) -> list[str]:
        found = increment.report_labels(reports, step)
        if not found:
            raise BuildError("cannot build on the previous base: the step did not report "
                             "what it installed")
        return [*recipe.install.changes, label_instruction({**labels, **found})]

    with recipe.requirement_files(wheels, cache_owner(), tools=hand_in, marker=marker,
                                  previous=prior.state()).to_file() as files:
        try:
            return engine.run_commit(
                prior.image, recipe.install.update, files=files,
                mounts={str(cache): PATHS.cache},
                changes=changes, progress=progress, network_mode=build_network(), what=ref,
                message=f"builder: requirements updated on {prior.ref} "
                        f"({recipe.installer.name})", report=marker)
        except BuildError as exc:
            progress.note(f"not building on the previous base "
                          f"({increment.declined_reason(str(exc))}): building it fresh")
            return None


def _marker() -> str:
    """What starts the install step's report line: nothing else it prints starts so."""
    return f"builder-report-{secrets.token_hex(8)}"


def _runtime(engine: Engine, recipe: BaseRecipe, below: str, wheels: Path, home: Path,
             progress: Progress, hand_in: bool) -> str:
    """builder's environment on `below`: found by its key, or made once and kept (untagged,
    labelled) for every base image that needs the same."""
    key = recipe.runtime_key(below, wheels)
    labels = {LABEL_PREFIX + "role": "runtime", LABEL_PREFIX + "runtime-key": key}
    with image_lock(home, f"runtime-{key}"):
        found = engine.labelled_image(labels)
        if found:
            progress.note(f"builder's environment: layer {found[7:19]} (built before)")
            return found
        with recipe.runtime_files(wheels, cache_owner(), tools=hand_in).to_file() as files:
            return engine.run_commit(
                below, recipe.install.runtime, files=files,
                mounts={str(download_cache(home)): PATHS.cache},
                changes=[label_instruction(labels)], progress=progress,
                network_mode=build_network(), what=f"builder's environment ({key[:12]})",
                message=f"builder: environment ({recipe.installer.name})")


def keep_tools(recipe: BaseRecipe, wheels: Path, cache: Path) -> bool:
    """Put the installer's tools into the host's cache (where the steps run them from): a
    hard link to the wheelhouse's copy (uv is 38 MB: a copy, synced, took 0.18 s of a first
    base build), else a copy. Neither is ever written in place, only replaced."""
    for name, source in recipe.installer.tools(wheels).items():
        target = cache / "tools" / name
        if target.is_file():
            continue
        try:
            _link_or_copy(source, target)
        except OSError:
            return False
    return True


def _link_or_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    link = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    try:
        os.link(source, link)
        os.replace(link, target)
    except OSError:  # another file system, or no hard links there
        with contextlib.suppress(FileNotFoundError):
            link.unlink()
        atomic_write_bytes(target, source.read_bytes(), mode=0o755)


def download_cache(home: Path) -> Path:
    """The host's download cache (a folder per installer), kept between base builds."""
    path = (home / "downloads").resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_owner() -> str | None:
    """Who the mounted cache is given back to after the install step (None: root)."""
    uid, gid = os.getuid(), os.getgid()
    return None if uid == 0 else f"{uid}:{gid}"
