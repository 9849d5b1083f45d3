"""Dockerfile rendering from the Jinja2 templates shipped with builder.

Installed from a wheel, the templates are `builder/_templates` (pyproject force-includes the
repository's `templates/` there). In a development install they are read from the
repository's `templates/` beside the package.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from builder.errors import BuilderError, UsageError

if TYPE_CHECKING:
    import jinja2

BASE_TEMPLATE = "base.Dockerfile.j2"
BUILDER_HOME = "/opt/builder"


def templates_dir() -> Path:
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "_templates", package.parent / "templates"):
        if (candidate / BASE_TEMPLATE).is_file():
            return candidate
    raise BuilderError("builder's Dockerfile templates are missing (looked in "
                       f"{package / '_templates'} and {package.parent / 'templates'}); "
                       "reinstall builder")


def render_base(parent_id: str, apt_packages: Sequence[str], *,
                remember: bool = False) -> str:
    """The Dockerfile part of the base image: the parent and its system packages. With
    `remember`, a rendering of the same template text and inputs is kept under
    `$BUILDER_HOME/cache/templates` and read back next time, which spares loading Jinja2 on
    the path of every run."""
    packages = sorted(set(apt_packages))
    if not remember:
        return _render_base(parent_id, packages)
    import contextlib
    import hashlib

    from builder.state.atomic import atomic_write_text
    from builder.state.settings_cache import cache_dir, prune

    source = (templates_dir() / BASE_TEMPLATE).read_bytes()
    inputs = json.dumps([parent_id, packages]).encode()
    key = hashlib.sha256(source + b"\0" + inputs).hexdigest()[:32]
    entry = cache_dir().parent / "templates" / f"{key}.txt"
    with contextlib.suppress(OSError, UnicodeDecodeError):
        return entry.read_text(encoding="utf-8")
    text = _render_base(parent_id, packages)
    with contextlib.suppress(OSError):
        atomic_write_text(entry, text)
        prune(entry.parent, ".txt")
    return text


def _render_base(parent_id: str, apt_packages: list[str]) -> str:
    return _environment().get_template(BASE_TEMPLATE).render(
        parent_id=parent_id, apt_packages=apt_packages)


def with_labels(dockerfile: str, labels: dict[str, str]) -> str:
    """Append one LABEL instruction (one build step, whatever the number of labels)."""
    if not labels:
        return dockerfile
    return dockerfile.rstrip("\n") + f"\n{label_instruction(labels)}\n"


def label_instruction(labels: dict[str, str]) -> str:
    pairs = " ".join(f"{env_quote(k)}={env_quote(v)}" for k, v in sorted(labels.items()))
    return f"LABEL {pairs}"


def template_sources() -> str:
    """A digest of builder's Dockerfile templates: "the template" when a rebuild is explained."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(templates_dir().iterdir()):
        if path.is_file():
            digest.update(path.name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


@cache
def _environment() -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["json"] = _json
    env.filters["shell_quote"] = shlex.quote
    env.filters["env_quote"] = env_quote
    return env


def _json(value: Any) -> str:
    return json.dumps(value)


def env_quote(value: str) -> str:
    """A Dockerfile ENV value, double-quoted, with `$` kept literal."""
    if "\n" in value or "\r" in value:
        raise UsageError(f"environment value {value[:20]!r}...: "
                         "a Dockerfile cannot hold a line break")
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'
