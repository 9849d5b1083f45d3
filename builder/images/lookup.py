"""Lookup-or-build of each image, under a per-image lock; what was found, built and pushed.

Each image is looked up in the local engine, then in the registry (if one is configured),
and built only when neither has it. Lookup and build of one image hold a file lock under
`$BUILDER_HOME/locks`, so concurrent builds of the same project build each image once.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from builder.images.engine import Engine
from builder.images.progress import Progress
from builder.state.locks import file_lock

if TYPE_CHECKING:
    from builder.images.layers import ImageSpec

Source = Literal["local", "pulled", "built"]


class ImageBuilds:
    def __init__(self, engine: Engine, home: Path, registry: str | None,
                 progress: Progress) -> None:
        self.engine = engine
        self.home = home
        self.registry = registry
        self.progress = progress
        self.sources: dict[str, Source] = {}
        self.built: list[str] = []
        self._specs: dict[str, ImageSpec] = {}

    def ensure(self, ref: str, what: str, build: Callable[[], None], *,
               force: bool = False) -> Source:
        with image_lock(self.home, ref, lambda: self.progress.note(
                f"waiting for another builder that holds {ref}")):
            source = self._find(ref, what) if not force else None
            if source is None:
                build()
                source = "built"
                self.built.append(ref)
        self.sources[ref] = source
        return source

    def spec(self, ref: str) -> ImageSpec:
        """What an image built on `ref` inherits (from what was learnt, else an inspect)."""
        if ref not in self._specs:
            from builder.images.layers import ImageSpec

            data = self._inspect(ref)
            if data is None:
                from builder.errors import BuildError

                raise BuildError(f"image {ref} is no longer in the local engine")
            self._specs[ref] = ImageSpec.from_inspect(data)
        return self._specs[ref]

    def remember(self, ref: str, spec: ImageSpec) -> None:
        """An image builder made itself: its spec is known without asking the engine."""
        self._specs[ref] = spec

    def _inspect(self, ref: str) -> dict[str, Any] | None:
        return self.engine.inspect(ref)

    def _find(self, ref: str, what: str) -> Source | None:
        if self._inspect(ref):
            self.progress.note(f"{what} {ref}: present in the local engine")
            return "local"
        if self.registry:
            reason = self.engine.pull(ref)
            if reason is None and self._inspect(ref):
                self.progress.note(f"{what} {ref}: pulled from {self.registry}")
                return "pulled"
            if reason and not _looks_absent(reason):
                self.progress.note(f"{what} {ref}: cannot pull from {self.registry} ({reason}); "
                                   "building it")
        return None

    def push_all(self) -> list[str]:
        pushed = []
        for ref, source in self.sources.items():
            if source == "pulled":
                continue
            if source == "local":
                remote = self.engine.registry_digest(ref)
                data = self._inspect(ref) or {}
                local = [d.rpartition("@")[2] for d in data.get("RepoDigests") or []]
                if remote and remote in local:
                    self.progress.note(f"{ref}: already in the registry")
                    continue
            self.progress.note(f"pushing {ref}")
            self.engine.push(ref)
            pushed.append(ref)
        return pushed


def _looks_absent(reason: str) -> bool:
    lowered = reason.lower()
    return any(text in lowered for text in ("not found", "manifest unknown", "does not exist"))


@contextlib.contextmanager
def image_lock(home: Path, ref: str, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """An exclusive lock per image reference, shared by every builder using this home."""
    path = home / "locks" / (hashlib.sha256(ref.encode()).hexdigest()[:32] + ".lock")
    with file_lock(path, on_wait=on_wait):
        yield
