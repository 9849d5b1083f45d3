"""The parent image: its content-addressed id, and the Python inside it.

The id comes from the local engine (pulled first if the image is not there). The Python
version and platform come from running the parent's `python3` once; the answer is cached
under `$BUILDER_HOME/parents/`, keyed by the id, so later builds need no container.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from builder.errors import BuildError, UsageError
from builder.images.engine import Engine
from builder.images.wheelhouse import Target
from builder.state.atomic import atomic_write_text

_PROBE = (
    "import json, platform, sys; "
    "libc, ver = platform.libc_ver(); "
    "print(json.dumps({'implementation': sys.implementation.name, "
    "'version': platform.python_version(), 'machine': platform.machine(), "
    "'system': platform.system().lower(), 'libc': libc, 'libc_version': ver}))"
)


@dataclass(frozen=True)
class Parent:
    name: str  # as builder.yaml names it
    id: str  # sha256:...
    target: Target


def resolve_parent(engine: Engine, name: str, home: Path, *, settings_file: Path,
                   log: Callable[[str], None] | None = None) -> Parent:
    image_id = engine.image_id(name)
    if image_id is None:
        if log is not None:
            log(f"pulling parent image {name}")
        reason = engine.pull(name)
        image_id = engine.image_id(name)
        if image_id is None:
            raise UsageError(
                f"{settings_file}: key 'parent_image': image {name!r} is not in the local engine "
                f"and cannot be pulled ({reason or 'not found'})"
            )
    return Parent(name, image_id, probe_target(engine, image_id, home))


def probe_target(engine: Engine, image_id: str, home: Path) -> Target:
    cache = home / "parents" / f"{image_id.replace(':', '-')}.json"
    try:
        return Target(**json.loads(cache.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        pass
    output = engine.run_once(image_id, ["python3", "-c", _PROBE])
    try:
        target = Target(**json.loads(output.strip().splitlines()[-1]))
    except (ValueError, TypeError, IndexError):
        raise BuildError(f"the parent image {image_id[:19]} has no working python3 "
                         f"(asked for its version, got {output.strip()[-200:]!r})") from None
    atomic_write_text(cache, json.dumps(asdict(target), sort_keys=True) + "\n")
    return target
