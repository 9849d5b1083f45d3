"""Gather the decision's facts: the checkout, the registered repositories, their remotes.

This is the imperative shell around `decision.decide`: git and the store are read here,
and nothing else is decided here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from builder.errors import BuilderError, RepositoryConfigError
from builder.repositories.base import BaseCodeRepository, LocalRepositoryContext
from builder.repositories.git_context import Checkout, GitLocalContext
from builder.repositories.types import instantiate
from builder.state.store import RepositoryRecord, Store

if TYPE_CHECKING:  # imported when the facts are in, after the remote has been asked
    from builder.decide.decision import Candidate, Facts

Warn = Callable[[str], None]


class FactsGathering:
    """The facts for `decide`, in two steps. The constructor starts git's slow questions (the
    remote, the work tree) in the background; `finish` waits for the answers and returns the
    facts with the repository objects that matched (by name). The caller reads builder.yaml
    meanwhile. `cancel` stops what is still running."""

    def __init__(
        self, project_dir: Path, store: Store, *, no_reuse: bool = False, warn: Warn | None = None
    ) -> None:
        self.records = store.repositories()
        self.no_reuse = no_reuse
        self.checkout = Checkout.discover(project_dir)
        self.contexts: list[tuple[RepositoryRecord, LocalRepositoryContext]] = []
        if self.checkout is None or self.checkout.head is None:
            return
        self.checkout.start_changes()
        self.contexts = _matching_contexts(self.records, project_dir, warn)
        for _, context in self.contexts:
            if isinstance(context, GitLocalContext):
                context.start_checks()

    @classmethod
    def start(
        cls,
        path: str | Path,
        *,
        store: Store | None = None,
        no_reuse: bool = False,
        warn: Warn | None = None,
    ) -> FactsGathering:
        """Start gathering for the project at `path` (the default store unless given)."""
        return cls(Path(path).resolve(), store or Store.default(), no_reuse=no_reuse, warn=warn)

    def finish(self) -> tuple[Facts, dict[str, BaseCodeRepository]]:
        from builder.decide.decision import Facts

        registered = tuple(r.name for r in self.records)
        checkout = self.checkout
        if checkout is None:
            return Facts(in_git=False, registered=registered, no_reuse=self.no_reuse), {}
        if checkout.head is None:
            return Facts(
                in_git=True,
                subdirectory=checkout.subdirectory,
                registered=registered,
                no_reuse=self.no_reuse,
            ), {}
        dirty_files = tuple(checkout.dirty_files)
        candidates = tuple(_candidate(record, context) for record, context in self.contexts)
        facts = Facts(
            in_git=True,
            has_commits=True,
            commit=checkout.head,
            subdirectory=checkout.subdirectory,
            dirty_files=dirty_files,
            registered=registered,
            remotes=tuple(dict.fromkeys(r.name for r in checkout.remotes)),
            candidates=candidates,
            no_reuse=self.no_reuse,
        )
        return facts, {record.name: context.code_repository for record, context in self.contexts}

    def cancel(self) -> None:
        if self.checkout is not None:
            self.checkout.cancel()


def _matching_contexts(
    records: list[RepositoryRecord], project_dir: Path, warn: Warn | None
) -> list[tuple[RepositoryRecord, LocalRepositoryContext]]:
    found = []
    for record in records:
        try:
            repository = instantiate(record, project_dir)
        except RepositoryConfigError as exc:
            if warn:
                warn(f"code repository {record.name!r} skipped: {exc}")
            continue
        try:
            context = repository.get_local_context(str(project_dir))
        except BuilderError:
            raise
        except Exception as exc:
            raise BuilderError(
                f"code repository {record.name!r}: get_local_context failed: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if context is not None:
            found.append((record, context))
    return found


def _candidate(record: RepositoryRecord, context: LocalRepositoryContext) -> Candidate:
    from builder.decide.decision import Candidate

    if isinstance(context, GitLocalContext):
        check = context.push_state
        return Candidate(
            record.name, context.remote.name, context.remote.display_url, check.pushed, check.detail
        )
    dirty = context.is_dirty
    unpushed = context.has_local_changes and not dirty
    return Candidate(
        record.name,
        "",
        "",
        not unpushed,
        f"{record.name} reports that commit {context.current_commit[:12]} is not on the remote"
        if unpushed
        else "",
        dirty=dirty,
    )
