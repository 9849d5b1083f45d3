"""The decision as a table: facts in, plan out (no git, no Docker)."""

from __future__ import annotations

import pytest

from builder.decide.decision import Candidate, Facts, decide

SHA = "a" * 40
PUSHED = Candidate("repo", "origin", "https://github.com/o/r", True)
UNPUSHED = Candidate(
    "repo", "origin", "https://github.com/o/r", False, "commit aaaa is on no branch"
)
UNKNOWN = Candidate(
    "repo", "origin", "https://github.com/o/r", None, "cannot reach remote 'origin'"
)
FORK_UNPUSHED = Candidate(
    "upstream-repo", "upstream", "https://github.com/org/r", False, "not upstream"
)


def facts(**overrides):
    base = dict(
        in_git=True,
        has_commits=True,
        commit=SHA,
        registered=("repo",),
        remotes=("origin",),
        candidates=(PUSHED,),
    )
    base.update(overrides)
    return Facts(**base)


TABLE = [
    # (description, facts, mode, reason fragments, repository, unpushed)
    ("clean and pushed", facts(), "reuse", [], "repo", False),
    (
        "outside git",
        Facts(in_git=False, registered=("repo",)),
        "bake",
        ["not inside a git"],
        None,
        False,
    ),
    ("no commits", Facts(in_git=True, registered=("repo",)), "bake", ["no commits"], None, False),
    (
        "nothing registered",
        facts(registered=(), candidates=()),
        "bake",
        ["no code repository is registered"],
        None,
        False,
    ),
    ("no remote", facts(remotes=(), candidates=()), "bake", ["no git remote"], None, False),
    (
        "no match",
        facts(candidates=()),
        "bake",
        ["matches the checkout's remotes (origin)"],
        None,
        False,
    ),
    (
        "dirty",
        facts(dirty_files=("a.py",)),
        "bake",
        ["1 file differs from commit aaaaaaaaaaaa: a.py"],
        "repo",
        False,
    ),
    (
        "many dirty",
        facts(dirty_files=tuple(f"f{i}" for i in range(8))),
        "bake",
        ["8 files differ from commit aaaaaaaaaaaa: f0, f1, f2, f3, f4 and 3 more"],
        "repo",
        False,
    ),
    ("unpushed", facts(candidates=(UNPUSHED,)), "bake", ["on no branch"], "repo", True),
    (
        "dirty and unpushed",
        facts(dirty_files=("x",), candidates=(UNPUSHED,)),
        "bake",
        ["1 file differs", "on no branch"],
        "repo",
        True,
    ),
    (
        "remote unreachable",
        facts(candidates=(UNKNOWN,)),
        "bake",
        ["cannot reach remote"],
        "repo",
        True,
    ),
    (
        "fork pushed, upstream not: the pushed one wins",
        facts(candidates=(FORK_UNPUSHED, PUSHED)),
        "reuse",
        [],
        "repo",
        False,
    ),
    (
        "only upstream registered and not pushed there",
        facts(candidates=(FORK_UNPUSHED,)),
        "bake",
        ["not upstream"],
        "upstream-repo",
        True,
    ),
    ("no-reuse", facts(no_reuse=True), "bake", ["--no-reuse"], "repo", False),
    (
        "custom context reports dirty",
        facts(candidates=(Candidate("c", "", "", True, dirty=True),)),
        "bake",
        ["c reports local changes"],
        "c",
        False,
    ),
]


@pytest.mark.parametrize(
    ("description", "given", "mode", "fragments", "repository", "unpushed"),
    TABLE,
    ids=[row[0] for row in TABLE],
)
def test_decision_table(description, given, mode, fragments, repository, unpushed):
    plan = decide(given)
    assert plan.mode == mode
    assert plan.code_repository == repository
    assert plan.unpushed is unpushed
    assert len(plan.reasons) == len(fragments), plan.reasons
    for fragment, reason in zip(fragments, plan.reasons, strict=False):
        assert fragment in reason
    assert (plan.reasons == ()) == (mode == "reuse")


def test_plan_carries_commit_and_subdirectory():
    plan = decide(facts(subdirectory="services/api"))
    assert (plan.commit, plan.subdirectory) == (SHA, "services/api")
