"""From a project directory to a plan: settings, facts, decision."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from builder.decide.decision import Facts, Plan, decide
from builder.decide.facts import FactsGathering
from builder.repositories.base import BaseCodeRepository
from builder.state.settings import Settings, load_settings
from builder.state.store import Store


class ProjectPlan(NamedTuple):
    settings: Settings
    facts: Facts
    plan: Plan
    repositories: dict[str, BaseCodeRepository]

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
    except BaseException:
        gathering.cancel()
        raise
    facts, repositories = gathering.finish()
    return ProjectPlan(settings, facts, decide(facts), repositories)


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
) -> dict[str, Any]:
    """DESIGN's JSON object for `status --json` and `build --json`."""
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
    }
