"""`builder build`: plan, then find or build the base image, then (bake) the code image.

Each image is looked up in the local engine, then in the registry (if one is configured),
and built only when neither has it. Lookup and build of one image hold a file lock under
`$BUILDER_HOME/locks`, so concurrent builds of the same project build each image once.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

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
from builder.images.checksum import code_key
from builder.images.context import ContextBuilder
from builder.images.dockerfile import (
    CODE_TEMPLATE,
    label_instruction,
    render_code,
    template_source,
    with_labels,
)
from builder.images.engine import Engine, build_network
from builder.images.inputs import BaseRecipe, gather_base, registered_repositories
from builder.images.install_step import PATHS
from builder.images.parent import resolve_parent
from builder.images.progress import Progress, default_progress
from builder.images.wheelhouse import builder_identity, ensure_wheelhouse
from builder.repositories.types import public_spec
from builder.state.atomic import atomic_write_bytes
from builder.state.locks import file_lock
from builder.state.store import Store

Source = Literal["local", "pulled", "built"]
LABEL_PREFIX = "org.builder."


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
                  progress: Progress | None = None,
                  warn: Callable[[str], None] | None = None) -> BuildResult:
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
    own_engine = engine is None
    engine = engine or Engine.connect()
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
        builds = _Builds(engine, store.home, registry, progress)
        labels = _labels(project, recipe.checksum)
        builds.ensure(base, "base image", lambda: _build_base(engine, recipe, base, store.home,
                                                              labels, progress, before))
        save_record(store.home, settings.project_dir,
                    {"checksum": recipe.checksum, **recipe.record})
        result = BuildResult(project, recipe.checksum, base, base, installed=installed,
                             base_changes=changes)
        if project.plan.mode == "bake":
            from builder.code.files import file_set

            files = file_set(settings.project_dir)
            key = code_key(recipe.checksum, files.digest, settings.code_dir,
                           template_source(CODE_TEMPLATE))
            code = names.code_ref(settings.name, registry, key)
            code_labels = {**labels, LABEL_PREFIX + "role": "code",
                           LABEL_PREFIX + "content-hash": files.digest}

            def build_code() -> None:
                context = ContextBuilder()
                dockerfile = with_labels(render_code(base, settings.code_dir), code_labels)
                context.add_bytes("Dockerfile", dockerfile.encode())
                target = context.add_rooted("code", settings.code_dir)
                for entry in files.entries:
                    name = f"{target}/{entry.path}"
                    if entry.kind == "symlink":
                        context.add_symlink(name, entry.target)
                    else:
                        context.add_file(name, files.root / entry.path,
                                         executable=entry.kind == "exec", digest=entry.digest)
                if recipe.project_dir and installed is not None \
                        and any(entry.path == "pyproject.toml" for entry in files.entries):
                    _add_project_install(context, installed, settings.code_dir,
                                         recipe.project_dir)
                _build(engine, context, code, progress,
                       f"baking {len(files.entries)} files into {code}", nocache=no_reuse)

            builds.ensure(code, "code image", build_code, force=no_reuse)
            result.image = code
            result.content_hash = files.digest
        elif project.plan.code_repository:
            record = store.get_repository(project.plan.code_repository)
            result.repository_spec = public_spec(record) if record else None
        result.built = builds.built
        result.sources = builds.sources
        if push:
            result.pushed = builds.push_all()
    finally:
        if own_engine:
            engine.close()
    result.seconds = time.perf_counter() - started
    return result


def _add_project_install(context: ContextBuilder, info: dict[str, Any], code_dir: str,
                         project_dir: str) -> None:
    """The project's install in the code layer, as the entrypoint writes it in reuse mode."""
    from builder.project.install import render

    target = context.add_rooted("code", project_dir)
    for relative, data, mode in render(info, code_dir, project_dir):
        context.add_bytes(f"{target}/{relative}", data, mode)


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


def _build(engine: Engine, context: ContextBuilder, ref: str, progress: Progress, title: str,
           *, nocache: bool = False) -> None:
    started = time.perf_counter()
    progress.start(title)
    try:
        with context.to_file() as tar:
            engine.build(tar, tag=ref, progress=progress, nocache=nocache,
                         network_mode=build_network())
    except BaseException:
        progress.fail(f"building {ref} failed")
        raise
    progress.finish(f"built {ref} in {time.perf_counter() - started:.1f} s")


class _Builds:
    """Lookup-or-build for each image, under a per-image lock; remembers what it did."""

    def __init__(self, engine: Engine, home: Path, registry: str | None,
                 progress: Progress) -> None:
        self.engine = engine
        self.home = home
        self.registry = registry
        self.progress = progress
        self.sources: dict[str, Source] = {}
        self.built: list[str] = []

    def ensure(self, ref: str, what: str, build: Callable[[], None], *,
               force: bool = False) -> Source:
        with image_lock(self.home, ref, lambda: self.progress.note(
                f"waiting for another builder that holds {ref}")):
            source = self._find(ref, what) if not force else None
            if source is None:
                build()
                source = "built"
                self.built.append(ref)
        self.sources[ref] = source
        return source

    def _find(self, ref: str, what: str) -> Source | None:
        if self.engine.image_id(ref):
            self.progress.note(f"{what} {ref}: present in the local engine")
            return "local"
        if self.registry:
            reason = self.engine.pull(ref)
            if reason is None and self.engine.image_id(ref):
                self.progress.note(f"{what} {ref}: pulled from {self.registry}")
                return "pulled"
            if reason and not _looks_absent(reason):
                self.progress.note(f"{what} {ref}: cannot pull from {self.registry} ({reason}); "
                                   "building it")
        return None

    def push_all(self) -> list[str]:
        pushed = []
        for ref, source in self.sources.items():
            if source == "pulled":
                continue
            remote = self.engine.registry_digest(ref)
            if remote and remote in self.engine.local_digests(ref):
                self.progress.note(f"{ref}: already in the registry")
                continue
            self.progress.note(f"pushing {ref}")
            self.engine.push(ref)
            pushed.append(ref)
        return pushed


def _looks_absent(reason: str) -> bool:
    lowered = reason.lower()
    return any(text in lowered for text in ("not found", "manifest unknown", "does not exist"))


@contextlib.contextmanager
def image_lock(home: Path, ref: str, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """An exclusive lock per image reference, shared by every builder using this home."""
    path = home / "locks" / (hashlib.sha256(ref.encode()).hexdigest()[:32] + ".lock")
    with file_lock(path, on_wait=on_wait):
        yield
