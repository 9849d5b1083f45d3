"""The update plan: which files an update fetches, and when it declines (plain data)."""

from __future__ import annotations

import pytest

from builder.code.updates import MAX_FETCHED, plan_from_changes, plan_update

FILE, EXE, LINK, GITLINK = "100644", "100755", "120000", "160000"
OLD = {
    "main.py": (FILE, "a" * 40),
    "run.sh": (EXE, "b" * 40),
    "link": (LINK, "c" * 40),
    **{f"pkg/m{i}.py": (FILE, f"{i:040x}") for i in range(40)},
}


def test_only_new_and_changed_entries_are_fetched() -> None:
    new = dict(OLD)
    new["main.py"] = (FILE, "d" * 40)  # content
    new["run.sh"] = (FILE, "b" * 40)  # mode only
    new["added.py"] = (FILE, "e" * 40)
    del new["pkg/m0.py"]
    plan = plan_update(OLD, new)
    assert plan is not None
    assert sorted(plan.fetch) == ["added.py", "main.py", "run.sh"]
    assert set(plan.keep) == set(new) - set(plan.fetch)
    assert "pkg/m0.py" not in plan.keep


@pytest.mark.parametrize(
    "change",
    [
        {".gitmodules": (FILE, "f" * 40)},
        {"vendor/lib": (GITLINK, "f" * 40)},
        {".dockerignore": (FILE, "f" * 40)},
        {f"gen/{i}": (FILE, f"{i:040x}") for i in range(MAX_FETCHED + 1)},
    ],
    ids=["gitmodules", "gitlink", "dockerignore", "too many"],
)
def test_declines_when_a_full_download_is_surer_or_cheaper(change: dict) -> None:
    assert plan_update(OLD, {**OLD, **change}) is None


def test_unlimited_plans_take_any_number_of_changes_but_still_decline_what_is_unsure() -> None:
    many = {f"gen/{i}": (FILE, f"{i:040x}") for i in range(MAX_FETCHED + 1)}
    plan = plan_update(OLD, {**OLD, **many}, limited=False)
    assert plan is not None and sorted(plan.fetch) == sorted(many)
    for unsure in ({".dockerignore": (FILE, "f" * 40)}, {"vendor/lib": (GITLINK, "f" * 40)}):
        assert plan_update(OLD, {**OLD, **many, **unsure}, limited=False) is None


def test_declines_an_empty_listing_and_a_change_of_most_of_a_small_tree() -> None:
    assert plan_update(OLD, {}) is None
    small = {f"f{i}": (FILE, f"{i:040x}") for i in range(12)}
    changed = {path: (FILE, "9" * 40) for path in small}
    assert plan_update(small, changed) is None
    assert plan_update(small, {**small, "f0": (FILE, "9" * 40)}) is not None


def test_compare_changes_fetch_the_new_and_keep_the_untouched_cached_paths() -> None:
    cached = ["main.py", "run.sh", "pkg/a.py", "pkg/b.py"]
    plan = plan_from_changes(cached, {"main.py": FILE, "pkg/b.py": None, "new.py": EXE})
    assert plan is not None
    assert plan.fetch == {"main.py": FILE, "new.py": EXE}
    assert sorted(plan.keep) == ["pkg/a.py", "run.sh"]


@pytest.mark.parametrize(
    "cached, changes",
    [
        (["main.py"], {"vendor/lib": GITLINK}),
        (["main.py", ".gitmodules"], {"main.py": FILE}),
        (["main.py", ".dockerignore"], {".dockerignore": FILE}),
        (["main.py"], {"main.py": None}),
        ([f"f{i}" for i in range(12)], {f"f{i}": FILE for i in range(12)}),
    ],
    ids=["gitlink", "gitmodules", "dockerignore", "nothing left", "most of a small tree"],
)
def test_compare_changes_decline_like_listings(cached: list, changes: dict) -> None:
    assert plan_from_changes(cached, changes) is None
