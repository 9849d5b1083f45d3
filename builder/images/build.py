"""`builder build`: plan, then find or build the base image, then (bake) the code image.

Each image is looked up in the local engine, then in the registry (if one is configured),
and built only when neither has it (`builder.images.lookup`). A bake puts the code in
layers on the base image in proportion to the change (`builder.images.bake`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from builder.decide.planning import (
    ProjectPlan,
    describe_project,
    plan_json,
    plan_project,
    project_json,
)
from builder.errors import UsageError
from builder.images import names
from builder.images.engine import Engine, build_network
from builder.images.inputs import BaseRecipe, gather_base
from builder.images.lookup import ImageBuilds, Source
from builder.images.parent import resolve_parent
from builder.images.progress import Progress, default_progress
from builder.images.wheelhouse import builder_identity, ensure_wheelhouse
from builder.repositories.base import BaseCodeRepository
from builder.repositories.types import public_spec
from builder.state.store import Store

if TYPE_CHECKING:
    from builder.images.context import ContextBuilder

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
                            dependencies=self.project.dependencies),
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
    own_engine = engine is None and connect is None
    engine = engine or (connect or Engine.connect)()
    try:
        parent = resolve_parent(engine, settings.parent_image, store.home,
                                settings_file=settings.file, log=progress.note)
        if project.dependencies is not None:
            progress.note(f"dependencies: {project.dependencies.describe()}")
        recipe = gather_base(settings, parent, _repositories(project, store),
                             source=project.dependencies, cache=store.home / "cache" / "uv-export")
        base = names.base_ref(settings.name, registry, recipe.checksum)
        builds = ImageBuilds(engine, store.home, registry, progress)
        labels = _labels(project, recipe.checksum)
        builds.ensure(base, "base image", lambda: _build_base(engine, recipe, base, store.home,
                                                              labels, progress))
        result = BuildResult(project, recipe.checksum, base, base, installed=installed)
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


def _repositories(project: ProjectPlan, store: Store) -> dict[str, tuple[str, BaseCodeRepository]]:
    records = {record.name: record for record in store.repositories()}
    return {name: (records[name].type if name in records else repo.type, repo)
            for name, repo in sorted(project.repositories.items())}


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
                labels: dict[str, str], progress: Progress) -> None:
    wheels = ensure_wheelhouse(home, recipe.parent.target, recipe.needs.extras,
                               recipe.needs.pip, log=progress.note)
    base_labels = {**labels, LABEL_PREFIX + "parent": recipe.parent.name}
    _build(engine, recipe.context(wheels, base_labels), ref, progress,
           f"building base image {ref} (FROM {recipe.parent.name})")


def _build(engine: Engine, context: ContextBuilder, ref: str, progress: Progress,
           title: str) -> None:
    started = time.perf_counter()
    progress.start(title)
    try:
        with context.to_file() as tar:
            engine.build(tar, tag=ref, progress=progress, network_mode=build_network())
    except BaseException:
        progress.fail(f"building {ref} failed")
        raise
    progress.finish(f"built {ref} in {time.perf_counter() - started:.1f} s")
