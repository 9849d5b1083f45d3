"""The reuse-or-bake decision: a pure function from facts to a plan.

Reuse only when every rule below is silent. Each rule that speaks adds its reason, so a
person sees every cause at once (a tree can be both dirty and unpushed).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, NamedTuple

Mode = Literal["reuse", "bake"]
MAX_LISTED_FILES = 5


class Candidate(NamedTuple):
    """A registered repository whose URL matches one of the checkout's remotes."""

    repository: str
    remote: str
    url: str  # without credentials
    pushed: bool | None  # None: the remote could not be asked
    detail: str = ""  # why not pushed, or why unknown
    dirty: bool = False  # as the repository's own context reports it


class Facts(NamedTuple):
    in_git: bool
    has_commits: bool = False
    commit: str | None = None
    subdirectory: str = ""
    dirty_files: tuple[str, ...] = ()
    registered: tuple[str, ...] = ()
    remotes: tuple[str, ...] = ()
    candidates: tuple[Candidate, ...] = ()
    no_reuse: bool = False

    @property
    def chosen(self) -> Candidate | None:
        """The candidate to use: the first that has the commit, else the first."""
        for candidate in self.candidates:
            if candidate.pushed:
                return candidate
        return self.candidates[0] if self.candidates else None

    @property
    def dirty(self) -> bool:
        chosen = self.chosen
        return bool(self.dirty_files) or bool(chosen and chosen.dirty)


class Plan(NamedTuple):
    mode: Mode
    reasons: tuple[str, ...]
    code_repository: str | None
    commit: str | None
    subdirectory: str
    dirty_files: tuple[str, ...]
    unpushed: bool


Rule = tuple[Callable[[Facts], bool], Callable[[Facts], str]]

RULES: tuple[Rule, ...] = (
    (lambda f: not f.in_git, lambda f: "the project is not inside a git checkout"),
    (lambda f: f.in_git and not f.has_commits, lambda f: "the git repository has no commits yet"),
    (
        lambda f: f.has_commits and not f.registered,
        lambda f: "no code repository is registered (see `builder code-repository register`)",
    ),
    (
        lambda f: f.has_commits and bool(f.registered) and not f.remotes,
        lambda f: "the checkout has no git remote",
    ),
    (
        lambda f: f.has_commits and bool(f.registered) and bool(f.remotes) and not f.candidates,
        lambda f: (
            f"no registered code repository ({', '.join(f.registered)}) matches the "
            f"checkout's remotes ({', '.join(f.remotes)})"
        ),
    ),
    (lambda f: f.has_commits and f.dirty, lambda f: _dirty_reason(f)),
    (
        lambda f: f.chosen is not None and f.chosen.pushed is False,
        lambda f: f.chosen.detail if f.chosen else "",
    ),
    (
        lambda f: f.chosen is not None and f.chosen.pushed is None,
        lambda f: f.chosen.detail if f.chosen else "",
    ),
    (lambda f: f.no_reuse, lambda f: "--no-reuse was given"),
)


def decide(facts: Facts) -> Plan:
    reasons = tuple(reason(facts) for applies, reason in RULES if applies(facts))
    chosen = facts.chosen
    return Plan(
        mode="bake" if reasons else "reuse",
        reasons=reasons,
        code_repository=chosen.repository if chosen else None,
        commit=facts.commit,
        subdirectory=facts.subdirectory,
        dirty_files=facts.dirty_files,
        unpushed=chosen is not None and chosen.pushed is not True,
    )


def _dirty_reason(facts: Facts) -> str:
    files = facts.dirty_files
    commit = (facts.commit or "")[:12]
    if not files:
        name = facts.chosen.repository if facts.chosen else "the repository"
        return f"{name} reports local changes against commit {commit}"
    shown = ", ".join(files[:MAX_LISTED_FILES])
    more = f" and {len(files) - MAX_LISTED_FILES} more" if len(files) > MAX_LISTED_FILES else ""
    noun = "file differs" if len(files) == 1 else "files differ"
    return f"{len(files)} {noun} from commit {commit}: {shown}{more}"
