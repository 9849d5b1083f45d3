"""A base image built on the project's previous base, when only the requirement lines changed.

A fresh base installs every requirement again (and compiles every file). When the previous
base of the project (its record under `$BUILDER_HOME/bases`) is in the local engine and
differs from the new one in the requirement lines only, the requirements step runs on that
image instead: it removes the distributions the new list no longer has, installs the ones
that are new or of another version, and compiles their files
(builder.images.site_packages, in the container). The result holds the same distributions
and files as a fresh install of the same lines; the step checks that, and any doubt makes a
fresh base instead. The new image is one small layer on the previous base.

What a base holds is in its labels: the distributions its requirements step installed
(`org.builder.installed`, written from what the container reports), their size, the bytes of
earlier versions its layers hide, how many steps it is from a fresh base, and the key of
everything but the requirement lines (`org.builder.frame`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from builder.errors import UsageError
from builder.images.checksum import BaseInputs, checksum

LABELS = "org.builder."
FRAME = LABELS + "frame"
INSTALLED = LABELS + "installed"
SIZE = LABELS + "installed-bytes"
HIDDEN = LABELS + "hidden-bytes"
INCREMENT = LABELS + "increment"
ENV = "BUILDER_BASE_INCREMENTS"
DEFAULT_INCREMENTS = 10
# A chain of layers is bounded by the storage driver (overlay2 mounts at most 128 lower
# layers; the engine refuses images of more than 125): stay well below.
MAX_LAYERS = 100
_DECLINED = re.compile(r"cannot build on the previous base: (.+)")


@dataclass(frozen=True)
class PreviousBase:
    """The project's previous base, as its labels describe it."""

    ref: str
    image: str
    installed: tuple[str, ...]
    size: int
    hidden: int
    increment: int

    def state(self) -> bytes:
        """What the step reads of it (previous.json)."""
        return json.dumps({"installed": list(self.installed), "size": self.size,
                           "hidden": self.hidden}).encode("utf-8")


def allowed_increments(environ: Mapping[str, str] | None = None) -> int:
    """How many bases may follow a fresh one: `BUILDER_BASE_INCREMENTS` (0: always fresh)."""
    raw = (os.environ if environ is None else environ).get(ENV, "").strip()
    if not raw:
        return DEFAULT_INCREMENTS
    if not raw.isdigit():
        raise UsageError(f"{ENV}={raw!r} must be a whole number (0: always build a fresh base)")
    return int(raw)


def frame_key(inputs: BaseInputs) -> str:
    """The checksum of every input but the requirement lines."""
    return checksum(dataclasses.replace(inputs, requirements=()))


def previous_base(data: Mapping[str, Any] | None, ref: str, *, frame: str,
                  checksum: str, limit: int) -> tuple[PreviousBase | None, str]:
    """The previous base (`data`: its image inspection, None if absent) if the new base may
    be built on it; else None and why not ("" when there is nothing to say)."""
    if data is None:
        return None, ""
    labels = (data.get("Config") or {}).get("Labels") or {}
    layers = len((data.get("RootFS") or {}).get("Layers") or [])
    if labels.get(LABELS + "checksum") != checksum:
        return None, f"{ref} is not the recorded base"
    if labels.get(FRAME) != frame:
        return None, "more than the requirement lines changed"
    if INSTALLED not in labels:
        return None, f"{ref} does not say what it installed"
    try:
        increment = int(labels.get(INCREMENT, ""))
        size, hidden = int(labels.get(SIZE, "")), int(labels.get(HIDDEN, ""))
    except ValueError:
        return None, f"{ref} has unreadable labels"
    if increment >= limit:
        return None, (f"{ref} is {increment} steps from a fresh base ({ENV}={limit})"
                      if limit else f"{ENV}=0")
    if layers >= MAX_LAYERS:
        return None, f"{ref} has {layers} layers"
    installed = tuple(labels[INSTALLED].split())
    return PreviousBase(ref, str(data["Id"]), installed, size, hidden, increment), ""


def report_labels(payloads: Iterable[str], increment: int) -> dict[str, str]:
    """The labels of a base from the step's report (the last one counts). Without a usable
    report the base gets none of them, and no later base is built on it."""
    report: dict[str, Any] = {}
    for payload in payloads:
        try:
            report = json.loads(payload)
        except ValueError:
            report = {}
    installed = report.get("installed")
    if not isinstance(installed, list) or not all(
            isinstance(item, str) and item and " " not in item for item in installed):
        return {}
    try:
        size, hidden = int(report.get("size", -1)), int(report.get("hidden", -1))
    except (TypeError, ValueError):
        return {}
    if size < 0 or hidden < 0:
        return {}
    return {INSTALLED: " ".join(installed), SIZE: str(size), HIDDEN: str(hidden),
            INCREMENT: str(increment)}


def declined_reason(message: str) -> str:
    """Why the step did not build on the previous base, from its failure's message."""
    found = _DECLINED.findall(message)
    if found:
        return str(found[-1]).strip()
    return message.strip().splitlines()[0] if message.strip() else "the step failed"
