"""Why a base image is rebuilt: the inputs that differ from the previous base of the project.

After each build, the inputs of the project's base image are recorded in
`$BUILDER_HOME/bases/<project key>.json` (written atomically; the key is the project
directory). `builder build` compares its base's inputs with that record when the checksum
differs; `builder status`, which needs no Docker engine, compares those it can know without
one (all but the parent's digest and Python, which it compares by the parent's name).

A change is a small JSON object: `{"input": "requirements", "added": [...], "removed": [...]}`
for lists and sets (requirement lines, apt packages, environment as KEY=VALUE, ...), and
`{"input": "builder_version", "before": ..., "after": ...}` for single values.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from builder.images.requirements import Requirements
from builder.state.atomic import atomic_write_text

if TYPE_CHECKING:
    from builder.project.sources import DependencySource
    from builder.repositories.base import BaseCodeRepository
    from builder.state.settings import Settings
    from builder.state.store import Store

RECORD_VERSION = 1
# What a record holds, in the order changes are listed. Lists keep their order (requirement
# lines can steer a resolver); the others are compared as sets.
ORDERED = ("requirements",)
SETS = ("apt_packages", "environment", "runtime_needs", "custom_sources")
SCALARS = ("parent_image", "parent_digest", "python_version", "platform", "installer",
           "template", "builder_version", "code_dir")
# What status can know without an engine.
WITHOUT_ENGINE = frozenset(ORDERED + SETS + SCALARS) - {"parent_digest", "python_version",
                                                          "platform"}

Record = dict[str, Any]
Change = dict[str, Any]


def record_path(home: Path, project_dir: Path) -> Path:
    key = hashlib.sha256(str(project_dir.resolve()).encode("utf-8")).hexdigest()[:32]
    return home / "bases" / f"{key}.json"


def load_record(home: Path, project_dir: Path) -> Record | None:
    """The inputs of the previous base built for this project; None if unknown or unreadable."""
    try:
        data = json.loads(record_path(home, project_dir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("version") != RECORD_VERSION:
        return None
    return data


def save_record(home: Path, project_dir: Path, record: Record) -> None:
    data = {"version": RECORD_VERSION, "project_dir": str(project_dir.resolve()), **record}
    atomic_write_text(record_path(home, project_dir), json.dumps(data, indent=1) + "\n")


def base_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[Change]:
    """Each input present in both that differs, in a fixed order."""
    changes: list[Change] = []
    for key in ORDERED + SETS:
        if key not in before or key not in after:
            continue
        old, new = _items(before[key]), _items(after[key])
        if key in SETS:
            old, new = sorted(set(old)), sorted(set(new))
        if old == new:
            continue
        change: Change = {"input": key,
                          "added": list((Counter(new) - Counter(old)).elements()),
                          "removed": list((Counter(old) - Counter(new)).elements())}
        if not change["added"] and not change["removed"]:
            change["reordered"] = True
        changes.append(change)
    for key in SCALARS:
        if key in before and key in after and before[key] != after[key]:
            changes.append({"input": key, "before": before[key], "after": after[key]})
    return changes


def _items(value: Any) -> list[str]:
    if isinstance(value, Mapping):
        return [f"{k}={v}" for k, v in value.items()]
    return [str(item) for item in value or ()]


def describe_change(change: Mapping[str, Any]) -> str:
    """One line for the person at the terminal."""
    name = str(change["input"]).replace("_", " ")
    if "before" in change:
        return f"{name}: {_short(change['before'])} -> {_short(change['after'])}"
    parts = [f"+ {item}" for item in change.get("added", [])]
    parts += [f"- {item}" for item in change.get("removed", [])]
    if change.get("reordered"):
        parts.append("order changed")
    return f"{name}: {', '.join(parts)}"


def _short(value: Any) -> str:
    text = str(value)
    if text.startswith("sha256:"):
        return text[:19]
    return text if len(text) <= 40 else text[:24] + "..."


def changes_since_last_build(settings: Settings, repositories: Mapping[str, BaseCodeRepository],
                             store: Store, source: DependencySource | None = None) -> list[Change]:
    """For `builder status`: the inputs known without an engine that differ from the record.
    A lock or pyproject.toml is resolved for the Python of the recorded parent."""
    previous = load_record(store.home, settings.project_dir)
    if previous is None:
        return []
    from builder.images.inputs import (
        known_inputs,
        project_requirements,
        registered_repositories,
        runtime_needs,
        target_environment,
    )
    from builder.project.sources import detect_source

    needs = runtime_needs(registered_repositories(repositories, store))
    source = source or detect_source(settings)
    target = previous.get("target")
    if isinstance(target, dict):
        environment = target_environment(target)
    elif source.requirement_files:
        environment = {}
    else:
        return base_changes({k: v for k, v in previous.items() if k != "requirements"},
                            known_inputs(settings, Requirements(), needs))
    requirements = project_requirements(settings, environment, source,
                                        store.home / "cache" / "uv-export")
    return base_changes(previous, known_inputs(settings, requirements, needs))
