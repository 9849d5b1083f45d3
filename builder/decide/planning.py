"""From a project directory to a plan: settings, facts, decision."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from builder.decide.decision import Facts, Plan, decide
from builder.decide.facts import FactsGathering
from builder.project.sources import DependencySource, detect_source
from builder.repositories.base import BaseCodeRepository
from builder.state.settings import Settings, load_settings
from builder.state.store import Store


class ProjectPlan(NamedTuple):
    settings: Settings
    facts: Facts
    plan: Plan
    repositories: dict[str, BaseCodeRepository]
    dependencies: DependencySource | None = None  # where the dependencies come from

    @property
    def repository(self) -> BaseCodeRepository | None:
        name = self.plan.code_repository
        return self.repositories.get(name) if name else None


def plan_project(
    path: str | Path,
    *,
    no_reuse: bool = False,
    store: Store | None = None,
    warn: Callable[[str], None] | None = None,
    gathering: FactsGathering | None = None,
) -> ProjectPlan:
    """`gathering`, when given, is the facts gathering already started for `path`."""
    # git's questions run while builder.yaml is read: they take the longest.
    if gathering is None:
        gathering = FactsGathering.start(path, store=store, no_reuse=no_reuse, warn=warn)
    try:
        settings = load_settings(path)
        dependencies = detect_source(settings)
    except BaseException:
        gathering.cancel()
        raise
    facts, repositories = gathering.finish()
    return ProjectPlan(settings, facts, decide(facts), repositories, dependencies)


def describe_project(settings: Settings) -> dict[str, Any] | None:
    """The project as it will be installed beside the code (None when it is not). `build`
    asks; `status` does not, to stay off the TOML parser when no lock needs it."""
    if not settings.install_project:
        return None
    from builder.project.metadata import describe

    return describe(settings.project_dir)


def check_project(settings: Settings) -> Settings:
    """Bad project files (pyproject.toml, a lock's neighbour) fail here, before any engine
    or run record: where the dependencies come from, and what the project installs."""
    detect_source(settings)
    describe_project(settings)
    return settings


def project_json(project: dict[str, Any] | None) -> dict[str, Any] | None:
    """The `project` key of build's JSON: the project installed beside the code."""
    if project is None:
        return None
    scripts = project["entry_points"].get("console_scripts", {})
    return {"name": project["name"], "version": project["version"],
            "import_roots": [root or "." for root in project["roots"]],
            "scripts": sorted(scripts)}


def plan_json(
    plan: Plan,
    *,
    checksum: str | None = None,
    base_image: str | None = None,
    image: str | None = None,
    built: list[str] | None = None,
    pushed: list[str] | None = None,
    seconds: float = 0.0,
    base_changes: list[dict[str, Any]] | None = None,
    dependencies: DependencySource | None = None,
) -> dict[str, Any]:
    """DESIGN's JSON object for `status --json` and `build --json`, with the dependency
    source (an extra key)."""
    return {
        "mode": plan.mode,
        "reasons": list(plan.reasons),
        "code_repository": plan.code_repository,
        "commit": plan.commit,
        "subdirectory": plan.subdirectory,
        "dirty_files": list(plan.dirty_files),
        "unpushed": plan.unpushed,
        "checksum": checksum,
        "base_image": base_image,
        "image": image,
        "built": list(built or []),
        "pushed": list(pushed or []),
        "base_changes": list(base_changes or []),
        "seconds": round(seconds, 3),
        "dependencies": dependencies.to_json() if dependencies else None,
    }
