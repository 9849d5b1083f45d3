"""Run targets beyond the local engine: a Docker Swarm service, a Kubernetes Job manifest.

Both hand builder's plan to an existing engine; builder schedules nothing itself. They use
the container contract unchanged: the image comes from a registry, the commit and the
repository spec travel in the environment, and the token is a mounted file named by
`BUILDER_TOKEN_FILE` (a Docker secret in a swarm, a Kubernetes Secret in a cluster).

This module holds what both targets share: option checks, the registry requirement, the
content-derived name of a token secret, and `Workload` (the run's container plus the facts
its labels carry). `prepare` builds the project for a cluster and returns a `Workload`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from builder.errors import UsageError

if TYPE_CHECKING:
    from builder.images.engine import Engine
    from builder.state.store import Store
    from builder.targets.local import ContainerSpec, RunOptions

TARGETS = ("local", "swarm", "kubernetes")
TOKEN_SECRET_PREFIX = "builder-token-"
TOKEN_SECRET_DIGITS = 16
_DNS_INVALID = re.compile(r"[^a-z0-9-]+")


@dataclass(frozen=True)
class Workload:
    """What a cluster runs: the container (no secret in it) and the facts for its labels."""

    project: str
    spec: ContainerSpec
    mode: str
    checksum: str
    commit: str | None
    repository: str | None
    content_hash: str | None = None
    run_id: str | None = None  # the run record's id (`builder runs show ID`)

    @property
    def token(self) -> str | None:
        return self.spec.token

    def labels(self, prefix: str) -> dict[str, str]:
        """Identifying facts, never a secret (DESIGN "Images": checksum, commit, repository)."""
        labels = {
            f"{prefix}run": "1",
            f"{prefix}mode": self.mode,
            f"{prefix}checksum": self.checksum,
            f"{prefix}commit": self.commit or "",
            f"{prefix}repository": self.repository or "",
        }
        if self.run_id:
            labels[f"{prefix}run-id"] = self.run_id
        return labels


def check_options(target: str, *, emit: bool, include_secret: bool) -> None:
    """Combinations of --target, --emit and --include-secret that make sense (else exit 2)."""
    if target not in TARGETS:
        raise UsageError(f"--target {target!r}: expected one of {', '.join(TARGETS)}")
    if target != "kubernetes" and (emit or include_secret):
        option = "--emit" if emit else "--include-secret"
        raise UsageError(f"{option} goes with --target kubernetes")
    if target == "kubernetes" and not emit:
        raise UsageError(
            "--target kubernetes needs --emit: builder does not talk to clusters itself; "
            "print the manifests and apply them, e.g. "
            "`builder run --target kubernetes --emit | kubectl apply -f -`"
        )


def token_secret_name(token: str) -> str:
    """`builder-token-<16 hex>`: derived from the token's content, never containing it.

    The same token always gets the same name (so one secret is reused by every run), and a
    rotated token gets a new one. The hash is domain-separated and truncated to 64 bits.
    """
    digest = hashlib.sha256(b"builder-token\0" + token.encode("utf-8")).hexdigest()
    return TOKEN_SECRET_PREFIX + digest[:TOKEN_SECRET_DIGITS]


def dns_label(text: str, limit: int = 63) -> str:
    """A Kubernetes/Swarm-safe name fragment: lowercase letters, digits and '-'."""
    label = _DNS_INVALID.sub("-", text.lower()).strip("-")[:limit].strip("-")
    return label or "builder"


def require_registry(settings: Any, target: str, environ: Mapping[str, str] | None = None) -> str:
    """The registry every node pulls from; a UsageError naming `registry:` if none is set."""
    from builder.images import names

    registry = names.registry_for(settings, dict(environ) if environ is not None else None)
    if not registry:
        raise UsageError(
            f"--target {target} needs a registry that the cluster's nodes can pull from: "
            f"set `registry:` in {settings.file} or {names.REGISTRY_ENV}"
        )
    return registry


def pinned_image(engine: Engine, ref: str, warn: Callable[[str], None]) -> str:
    """`ref@sha256:...` as the registry has it, so every node runs exactly the built image."""
    if "@" in ref:
        return ref
    digest = engine.registry_digest(ref)
    if not digest:
        warn(f"cannot read the digest of {ref} from its registry; using the tag")
        return ref
    return f"{ref}@{digest}"


def prepare(
    path: Path,
    target: str,
    options: RunOptions,
    *,
    no_reuse: bool,
    store: Store,
    engine: Engine,
    registry_required: bool,
    message: Callable[[str], None],
    warn: Callable[[str], None],
    environ: Mapping[str, str],
    on_built: Callable[[Any, ContainerSpec], None] | None = None,
) -> Workload:
    """Build as `builder build --push` does (the registry is where nodes find the image).

    `on_built(result, spec)` sees the build's result and the container as nodes will run it.
    """
    from builder.images import names
    from builder.state.settings import load_settings
    from builder.targets.local import build_for_run

    settings = load_settings(path)
    if registry_required:
        registry: str | None = require_registry(settings, target, environ)
    else:
        registry = names.registry_for(settings, dict(environ))
    result, spec = build_for_run(path, options, push=bool(registry), no_reuse=no_reuse,
                                 store=store, engine=engine, warn=warn, message=message,
                                 environ=environ)
    project = result.project
    if registry:
        image = pinned_image(engine, result.image, warn)
    else:
        image = result.image
        warn(
            f"no registry is configured: the cluster's nodes must already have {image} "
            f"(set `registry:` in {settings.file} or {names.REGISTRY_ENV} to push it)"
        )
    from dataclasses import replace

    spec = replace(spec, image=image)
    if on_built is not None:
        on_built(result, spec)
    return Workload(
        project=settings.name,
        spec=spec,
        mode=project.plan.mode,
        checksum=result.checksum,
        commit=project.plan.commit,
        repository=project.plan.code_repository,
        content_hash=result.content_hash,
    )
