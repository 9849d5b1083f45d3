"""Gather the base image's inputs: requirements, repository runtime needs, the template.

The dependencies come from where the project declares them (`builder.project`): a lock or
pyproject.toml gives one requirement file that builder makes (the resolved set). Requirement
files go into the build context under names derived from their content, and `-r`/`-c`
references between them are rewritten to those names, so the checksum depends on what the
files say and not on what they are called or where the project lives.
"""

from __future__ import annotations

import hashlib
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from builder.errors import SettingsError
from builder.images import wheelhouse
from builder.images.checksum import BaseInputs, checksum
from builder.images.context import ContextBuilder
from builder.images.dockerfile import (
    BUILDER_HOME,
    PROJECT_HOOK_DIR,
    REQUIREMENTS_DIR,
    WHEELHOUSE_DIR,
    BaseTemplateData,
    render_base,
    with_labels,
)
from builder.images.parent import Parent
from builder.project import install
from builder.project.resolve import ResolvedSet, marker_environment, resolve
from builder.project.sources import DependencySource, detect_source
from builder.repositories.base import BaseCodeRepository
from builder.state.settings import Settings

_REFERENCE = re.compile(
    r"^(?P<lead>\s*)(?P<opt>--requirement|--constraint|-r|-c)(?P<sep>\s*=\s*|\s+|)(?P<path>\S+)"
    r"(?P<rest>.*)$"
)
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
NAME_DIGITS = 20

# What each built-in repository type needs in the image for the entrypoint to download.
TYPE_EXTRAS = {"github": ("github",), "gitlab": ("gitlab",)}
TYPE_APT = {"git": ("git",)}


@dataclass(frozen=True)
class RequirementFile:
    name: str  # file name in the context, from the content
    data: bytes  # the content, with references rewritten to context names
    source: Path


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
    dockerfile: str
    requirements: tuple[RequirementFile, ...]
    needs: RuntimeNeeds
    checksum: str
    dependencies: ResolvedSet | None = None
    project_dir: str = ""  # where the project's install lives in the image; "" for none

    def context(self, wheels: Path, labels: dict[str, str]) -> ContextBuilder:
        context = ContextBuilder()
        context.add_bytes("Dockerfile", with_labels(self.dockerfile, labels).encode("utf-8"))
        if self.requirements:
            target = context.add_rooted("requirements", REQUIREMENTS_DIR)
            for requirement in self.requirements:
                context.add_bytes(f"{target}/{requirement.name}", requirement.data)
        if self.project_dir:
            target = context.add_rooted("project-hook", PROJECT_HOOK_DIR)
            context.add_bytes(f"{target}/{install.HOOK_MODULE}.py",
                              install.hook_source(self.project_dir).encode("utf-8"))
        target = context.add_rooted("wheelhouse", WHEELHOUSE_DIR)
        for wheel in sorted(wheels.glob("*.whl")):
            context.add_file(f"{target}/{wheel.name}", wheel)
        if self.needs.custom_modules:
            target = context.add_rooted("custom", f"{BUILDER_HOME}/custom")
            for module in self.needs.custom_modules:
                for path, data in module.files:
                    context.add_bytes(f"{target}/{path}", data)
        return context


def gather_base(settings: Settings, parent: Parent,
                repositories: dict[str, tuple[str, BaseCodeRepository]], *,
                source: DependencySource | None = None,
                cache: Path | None = None) -> BaseRecipe:
    """The base recipe; repositories maps name -> (registered type, repository object).

    `source` is where the dependencies come from (detected when not given); `cache` is
    where uv's exports are remembered."""
    source = source or detect_source(settings)
    target = parent.target
    resolved = resolve(settings.project_dir, source,
                       marker_environment(target.implementation, target.version,
                                          target.machine, target.system), cache)
    top = {(settings.project_dir / name).resolve() for name in source.requirement_files}
    if source.requirement_files:
        requirements = collect_requirements(settings, source.requirement_files)
    elif resolved.lines:
        text = resolved.text.encode("utf-8")
        generated = RequirementFile(hashlib.sha256(text).hexdigest()[:NAME_DIGITS] + ".txt",
                                    text, settings.project_dir / source.files[-1])
        requirements, top = [generated], {generated.source}
    else:
        requirements = []
    project_dir = install.project_dir_for(settings.code_dir) if settings.install_project else ""
    needs = runtime_needs(repositories)
    data = BaseTemplateData(
        parent_id=parent.id,
        apt_packages=tuple(sorted(set(settings.apt_packages) | set(needs.apt))),
        requirements=tuple(sorted({r.name for r in requirements if r.source in top})),
        builder_requirement=wheelhouse.requirement(needs.extras),
        extra_requirements=needs.pip,
        custom_module=bool(needs.custom_modules),
        environment=tuple(sorted(settings.environment.items())),
        code_dir=settings.code_dir,
        project_dir=project_dir,
    )
    dockerfile = render_base(data)
    inputs = BaseInputs(
        parent_digest=parent.id,
        requirements=tuple(hashlib.sha256(r.data).hexdigest() for r in requirements),
        apt_packages=data.apt_packages,
        environment=data.environment,
        template=dockerfile,
        builder_version=wheelhouse.builder_identity(),
        python_version=parent.target.version,
        platform=parent.target.platform,
        custom_sources=tuple(m.digest for m in needs.custom_modules),
        runtime_needs=needs.describe(),
    )
    return BaseRecipe(parent, inputs, dockerfile, tuple(requirements), needs, checksum(inputs),
                      resolved, project_dir)


def collect_requirements(settings: Settings,
                         names: tuple[str, ...] | None = None) -> list[RequirementFile]:
    """Every requirement file, including those referenced with -r/-c, content-addressed.

    `names` are the top files, relative to the project (default: `requirements:`)."""
    done: dict[Path, RequirementFile] = {}
    names = settings.requirements if names is None else names
    for name in names:
        path = settings.project_dir / name
        if not path.is_file():
            raise SettingsError(
                f"{settings.file}: key 'requirements': file {name!r} "
                f"not found in {settings.project_dir}"
            )
        _requirement_file(path.resolve(), settings, done, ())
    return sorted(done.values(), key=lambda r: r.name)


def _requirement_file(path: Path, settings: Settings, done: dict[Path, RequirementFile],
                      stack: tuple[Path, ...]) -> RequirementFile:
    if path in done:
        return done[path]
    if path in stack:
        raise SettingsError(f"{path}: requirement files include each other in a cycle")
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        including = stack[-1] if stack else settings.file
        raise SettingsError(f"{including}: requirement file {str(path)!r} not found") from None
    except UnicodeDecodeError:
        raise SettingsError(f"{path}: requirement file is not UTF-8 text") from None
    except OSError as exc:
        raise SettingsError(f"{path}: cannot be read: {exc.strerror}") from None
    lines = []
    for line in text.splitlines(keepends=True):
        match = _REFERENCE.match(line.rstrip("\r\n"))
        if match and not _URL.match(match["path"]):
            included = (path.parent / match["path"]).resolve()
            child = _requirement_file(included, settings, done, (*stack, path))
            ending = line[len(line.rstrip("\r\n")):]
            line = f"{match['lead']}{match['opt']} {child.name}{match['rest']}{ending}"
        lines.append(line)
    data = "".join(lines).encode("utf-8")
    name = hashlib.sha256(data).hexdigest()[:NAME_DIGITS] + ".txt"
    result = RequirementFile(name, data, path)
    done[path] = result
    return result


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
