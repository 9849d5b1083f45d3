"""Gather the base image's inputs: requirements, repository runtime needs, the installer,
the rendered Dockerfile part and install steps.

The dependencies come from where the project declares them (`builder.project`): requirement
files, or a lock or pyproject.toml that builder resolves into one list. Either way they are
one list of requirement lines (builder.images.requirements.Requirements), installed by the
chosen installer (builder.images.installers).
"""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from builder.images import wheelhouse
from builder.images.checksum import BaseInputs, checksum
from builder.images.context import ContextBuilder
from builder.images.dockerfile import render_base, template_sources
from builder.images.increment import frame_key
from builder.images.install_step import CACHE_OWNER_FILE, PATHS, InstallSteps, render_install
from builder.images.installers import Installer, get_installer
from builder.images.parent import Parent
from builder.images.requirements import MAIN_FILE, Requirements, collect_requirements
from builder.project import install
from builder.project.resolve import marker_environment, resolve
from builder.project.sources import DependencySource, detect_source
from builder.repositories.base import BaseCodeRepository
from builder.state.settings import Settings
from builder.state.store import Store

_URL_USERINFO = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.\-]*://)[^/\s@]+@")
# What each built-in repository type needs in the image for the entrypoint to download.
TYPE_EXTRAS = {"github": ("github",), "gitlab": ("gitlab",)}
TYPE_APT = {"git": ("git",)}
SITE_HELPER = Path(__file__).with_name("site_packages.py")  # run in the container, not imported


@dataclass(frozen=True)
class CustomModule:
    name: str  # top-level module or package name
    files: tuple[tuple[str, bytes], ...]  # (path under custom/, content)

    @property
    def digest(self) -> str:
        digest = hashlib.sha256()
        for path, data in self.files:
            digest.update(path.encode() + b"\0" + hashlib.sha256(data).digest())
        return digest.hexdigest()


@dataclass(frozen=True)
class RuntimeNeeds:
    types: tuple[str, ...] = ()
    extras: tuple[str, ...] = ()
    apt: tuple[str, ...] = ()
    pip: tuple[str, ...] = ()
    custom_modules: tuple[CustomModule, ...] = ()

    def describe(self) -> tuple[str, ...]:
        return tuple(sorted({f"type:{t}" for t in self.types} | {f"extra:{e}" for e in self.extras}
                            | {f"apt:{a}" for a in self.apt} | {f"pip:{p}" for p in self.pip}
                            | {f"module:{m.name}" for m in self.custom_modules}))


@dataclass(frozen=True)
class BaseRecipe:
    """Everything that makes the base image, and its checksum."""

    parent: Parent
    inputs: BaseInputs
    prefix: str  # the Dockerfile part: parent and apt packages
    install: InstallSteps
    requirements: Requirements
    needs: RuntimeNeeds
    installer: Installer
    checksum: str
    record: dict[str, Any]  # the inputs as builder.images.changes compares them
    project_dir: str = ""  # where the project's install lives in the image; "" for none
    frame: str = ""  # the checksum of every input but the requirement lines

    def __hash__(self) -> int:
        return hash(self.checksum)

    @property
    def dockerfile(self) -> str:
        """The whole recipe, as a reader sees it: the Dockerfile part, then the install step."""
        return self.prefix + "\n" + self.install.text()

    def prefix_context(self) -> ContextBuilder:
        context = ContextBuilder()
        context.add_bytes("Dockerfile", self.prefix.encode("utf-8"))
        return context

    def runtime_files(self, wheels: Path, cache_owner: str | None, *,
                      tools: bool) -> ContextBuilder:
        """What the runtime step needs, laid out from `/`; removed again before the commit.
        `tools`: hand in the installer's tools (they may be missing from the cache)."""
        files = self._staging(wheels, cache_owner, tools=tools)
        staging = PATHS.staging.lstrip("/")
        wanted = {_wheel_project(name) for name in self.installer.tool_requirements()}
        for wheel in sorted(wheels.glob("*.whl")):
            if _wheel_project(wheel.name) not in wanted:
                files.add_file(f"{staging}/wheelhouse/{wheel.name}", wheel)
        for module in self.needs.custom_modules:
            for name, data in module.files:
                files.add_bytes(f"{staging}/custom/{name}", data)
        return files

    def requirement_files(self, wheels: Path, cache_owner: str | None, *, tools: bool,
                          marker: str = "", previous: bytes | None = None) -> ContextBuilder:
        """What the requirements step needs, laid out from `/`; removed before the commit.
        `marker` starts the step's report line; `previous` is what the update step reads of
        the previous base (builder.images.increment)."""
        files = self._staging(wheels, cache_owner, tools=tools)
        staging = PATHS.staging.lstrip("/")
        if self.install.update:  # the installer can update a base: the steps report
            files.add_bytes(PATHS.helper.lstrip("/"), SITE_HELPER.read_bytes())
            files.add_bytes(f"{staging}/marker", marker.encode("utf-8"))
        if previous is not None:
            files.add_bytes(f"{staging}/previous.json", previous)
        if self.requirements:
            files.add_bytes(f"{staging}/requirements/{MAIN_FILE}", self.requirements.text())
            for name, data in self.requirements.files:
                files.add_bytes(f"{staging}/requirements/{name}", data)
        if self.project_dir:
            files.add_bytes(f"{staging}/project-hook/{install.HOOK_MODULE}.py",
                            install.hook_source(self.project_dir).encode("utf-8"))
        return files

    def _staging(self, wheels: Path, cache_owner: str | None, *, tools: bool) -> ContextBuilder:
        files = ContextBuilder()
        staging = PATHS.staging.lstrip("/")
        if tools:
            for name, tool in sorted(self.installer.tools(wheels).items()):
                files.add_file(f"{staging}/tools/{name}", tool, executable=True)
        if cache_owner:
            files.add_bytes(f"{staging}/{CACHE_OWNER_FILE}", cache_owner.encode())
        return files

    def runtime_key(self, below: str, wheels: Path) -> str:
        """What builder's environment layer depends on: the image below it, the step, the
        wheels (the wheelhouse's own key), the custom modules."""
        text = "\n".join([below, self.install.runtime, wheels.name,
                          *(m.digest for m in self.needs.custom_modules)])
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


def gather_base(settings: Settings, parent: Parent,
                repositories: dict[str, tuple[str, BaseCodeRepository]], *,
                source: DependencySource | None = None,
                cache: Path | None = None) -> BaseRecipe:
    """The base recipe; repositories maps name -> (registered type, repository object).

    `source` is where the dependencies come from (detected when not given); `cache` is
    where uv's exports are remembered."""
    requirements = project_requirements(settings, target_environment(asdict(parent.target)),
                                        source, cache)
    needs = runtime_needs(repositories)
    installer = get_installer(settings.installer)
    apt_packages = tuple(sorted(set(settings.apt_packages) | set(needs.apt)))
    project_dir = install.project_dir_for(settings.code_dir) if settings.install_project else ""
    prefix = render_base(parent.id, apt_packages, remember=True)
    steps = render_install(
        installer,
        has_requirements=bool(requirements),
        builder_requirements=(wheelhouse.requirement(needs.extras), *needs.pip),
        custom_module=bool(needs.custom_modules),
        environment=settings.environment,
        code_dir=settings.code_dir,
        project_dir=project_dir,
    )
    inputs = BaseInputs(
        parent_digest=parent.id,
        requirements=requirements.lines,
        apt_packages=apt_packages,
        environment=tuple(sorted(settings.environment.items())),
        template=prefix + steps.text(),
        builder_version=wheelhouse.builder_identity(),
        python_version=parent.target.version,
        platform=parent.target.platform,
        custom_sources=tuple(m.digest for m in needs.custom_modules),
        runtime_needs=needs.describe(),
        installer=installer.name,
    )
    record = {**known_inputs(settings, requirements, needs),
              "parent_digest": parent.id, "python_version": parent.target.version,
              "platform": parent.target.platform, "target": asdict(parent.target)}
    return BaseRecipe(parent, inputs, prefix, steps, requirements, needs, installer,
                      checksum(inputs), record, project_dir, frame_key(inputs))


def project_requirements(settings: Settings, environment: dict[str, str],
                         source: DependencySource | None = None,
                         cache: Path | None = None) -> Requirements:
    """The requirement lines of the project's dependency source (builder.project): the
    requirement files' lines, or the set builder resolves from a lock or pyproject.toml
    for the target's marker `environment`."""
    source = source or detect_source(settings)
    if source.requirement_files:
        return collect_requirements(settings, source.requirement_files)
    resolved = resolve(settings.project_dir, source, environment, cache)
    return Requirements(tuple(resolved.lines))


def target_environment(target: Mapping[str, str]) -> dict[str, str]:
    """PEP 508's marker variables of the parent's Python, from its probe (wheelhouse.Target)."""
    return marker_environment(target["implementation"], target["version"], target["machine"],
                              target["system"])


def known_inputs(settings: Settings, requirements: Requirements,
                 needs: RuntimeNeeds) -> dict[str, Any]:
    """The base's inputs that are known without an engine (for builder.images.changes)."""
    return {
        "requirements": [hide_url_credentials(line) for line in requirements.lines],
        "apt_packages": sorted(set(settings.apt_packages) | set(needs.apt)),
        "environment": dict(sorted(settings.environment.items())),
        "runtime_needs": list(needs.describe()),
        "custom_sources": [m.digest for m in needs.custom_modules],
        "parent_image": settings.parent_image,
        "installer": settings.installer,
        "template": template_sources(),
        "builder_version": wheelhouse.builder_identity(),
        "code_dir": settings.code_dir,
    }


def _wheel_project(name: str) -> str:
    """`uv` of `uv==0.13.9` or of `uv-0.13.9-py3-none-any.whl`."""
    return re.split(r"[-=<>~!\[ ]", name, maxsplit=1)[0].lower().replace("_", "-")


def hide_url_credentials(line: str) -> str:
    """A requirement line as records and messages show it: a URL's user and password (often
    a token) replaced by ***."""
    return _URL_USERINFO.sub(r"\1***@", line)


def registered_repositories(repositories: Mapping[str, BaseCodeRepository],
                            store: Store) -> dict[str, tuple[str, BaseCodeRepository]]:
    """name -> (registered type, repository object), as gather_base wants them."""
    records = {record.name: record for record in store.repositories()}
    return {name: (records[name].type if name in records else repo.type, repo)
            for name, repo in sorted(repositories.items())}


def runtime_needs(repositories: dict[str, tuple[str, BaseCodeRepository]]) -> RuntimeNeeds:
    """What the entrypoint needs in the image for these repositories, and nothing else."""
    types: set[str] = set()
    extras: set[str] = set()
    apt: set[str] = set()
    pip: set[str] = set()
    modules: dict[str, CustomModule] = {}
    for registered_type, repository in repositories.values():
        cls = type(repository)
        for kind in {registered_type, getattr(cls, "type", registered_type)}:
            types.add(kind)
            extras.update(TYPE_EXTRAS.get(kind, ()))
            apt.update(TYPE_APT.get(kind, ()))
        if registered_type == "custom":
            pip.update(str(r) for r in getattr(cls, "requirements", []) or [])
            module = custom_module(cls)
            if module is not None:
                modules[module.name] = module
    return RuntimeNeeds(tuple(sorted(types)), tuple(sorted(extras)), tuple(sorted(apt)),
                        tuple(sorted(pip)), tuple(modules[name] for name in sorted(modules)))


def custom_module(cls: type) -> CustomModule | None:
    """The source of the top-level module or package that defines a custom class."""
    top = cls.__module__.split(".")[0]
    if top == "builder":
        return None
    module = sys.modules.get(top)
    if module is None:
        return None
    files: list[tuple[str, bytes]] = []
    paths = list(getattr(module, "__path__", []) or [])
    if paths:
        package = Path(paths[0])
        for path in sorted(package.rglob("*")):
            rel = path.relative_to(package)
            if "__pycache__" in rel.parts or path.suffix in (".pyc", ".pyo") or not path.is_file():
                continue
            files.append((f"{top}/{rel.as_posix()}", path.read_bytes()))
    elif getattr(module, "__file__", None):
        source = Path(str(module.__file__))
        if source.suffix != ".py":
            return None
        files.append((f"{top}.py", source.read_bytes()))
    return CustomModule(top, tuple(files)) if files else None
