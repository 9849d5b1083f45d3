"""What `builder status` prints: the plan of a project, as DESIGN's JSON or a short table."""

from __future__ import annotations

import time
from pathlib import Path

from builder.cli.output import emit, emit_json, table, warn
from builder.decide.decision import MAX_LISTED_FILES
from builder.decide.facts import FactsGathering
from builder.decide.planning import plan_json, plan_project
from builder.images.changes import changes_since_last_build, describe_change
from builder.state.store import Store


def show_status(
    path: Path, *, json_output: bool, gathering: FactsGathering | None = None
) -> None:
    started = time.perf_counter()
    project = plan_project(path, warn=warn, gathering=gathering)
    plan = project.plan
    changes = changes_since_last_build(project.settings, project.repositories, Store.default(),
                                       project.dependencies)
    if json_output:
        emit_json(plan_json(plan, seconds=time.perf_counter() - started,
                            dependencies=project.dependencies, base_changes=changes))
        return
    repository = plan.code_repository or "(none)"
    chosen = project.facts.chosen
    if chosen is not None:
        repository += f"  ({chosen.remote}: {chosen.url})" if chosen.remote else ""
    rows = [
        ("mode", plan.mode),
        ("repository", repository),
        ("commit", plan.commit or "(none)"),
        ("subdirectory", plan.subdirectory or "(root)"),
    ]
    if project.dependencies is not None:
        rows.append(("dependencies", project.dependencies.describe()))
    for index, reason in enumerate(plan.reasons):
        rows.append(("reasons" if index == 0 else "", f"- {reason}"))
    if plan.dirty_files:
        shown = ", ".join(plan.dirty_files[:MAX_LISTED_FILES])
        more = len(plan.dirty_files) - MAX_LISTED_FILES
        rows.append(("dirty files", shown + (f" (+{more} more)" if more > 0 else "")))
    for index, change in enumerate(changes):
        rows.append(("base changes" if index == 0 else "", f"- {describe_change(change)}"))
    emit(table(rows))
