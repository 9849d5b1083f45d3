"""The layer between two shipped trees, and the digest that names a tree (plain data)."""

from __future__ import annotations

from builder.code.treediff import EXECUTABLE, FILE, SYMLINK, diff_trees, tree_digest

A, B, C = "a" * 40, "b" * 40, "c" * 40
LOWER = {
    "main.py": (FILE, A),
    "run.sh": (EXECUTABLE, B),
    "link": (SYMLINK, C),
    "pkg/one.py": (FILE, A),
    "pkg/two.py": (FILE, B),
    "old/deep/x.py": (FILE, A),
    "old/deep/y.py": (FILE, B),
    "old/keep.py": (FILE, C),
}


def upper(changes: dict[str, tuple[str, str] | None]) -> dict[str, tuple[str, str]]:
    tree = dict(LOWER)
    for path, entry in changes.items():
        if entry is None:
            tree.pop(path)
        else:
            tree[path] = entry
    return tree


def test_the_same_tree_needs_an_empty_layer():
    diff = diff_trees(LOWER, dict(LOWER))
    assert diff.empty and diff.changed == {} and diff.whiteouts == ()


def test_a_modified_or_added_file_is_in_the_layer_and_nothing_else():
    diff = diff_trees(LOWER, upper({"main.py": (FILE, B), "new.txt": (FILE, C)}))
    assert diff.changed == {"main.py": (FILE, B), "new.txt": (FILE, C)}
    assert diff.whiteouts == ()


def test_a_mode_only_change_and_a_retargeted_symlink_are_changes():
    diff = diff_trees(LOWER, upper({"main.py": (EXECUTABLE, A), "link": (SYMLINK, A)}))
    assert diff.changed == {"main.py": (EXECUTABLE, A), "link": (SYMLINK, A)}


def test_a_deleted_file_is_whited_out_alone_while_its_directory_keeps_files():
    diff = diff_trees(LOWER, upper({"pkg/two.py": None}))
    assert diff.whiteouts == ("pkg/two.py",) and diff.changed == {}


def test_a_directory_left_empty_is_whited_out_whole_at_its_highest_empty_level():
    diff = diff_trees(LOWER, upper({"old/deep/x.py": None, "old/deep/y.py": None}))
    assert diff.whiteouts == ("old/deep",)
    everything = upper({"old/deep/x.py": None, "old/deep/y.py": None,
                        "old/keep.py": None})
    assert diff_trees(LOWER, everything).whiteouts == ("old",)


def test_a_rename_is_an_addition_and_a_whiteout():
    renamed = upper({"pkg/one.py": None, "pkg/uno.py": (FILE, A)})
    diff = diff_trees(LOWER, renamed)
    assert diff.changed == {"pkg/uno.py": (FILE, A)} and diff.whiteouts == ("pkg/one.py",)


def test_a_file_that_becomes_a_directory_needs_no_whiteout():
    diff = diff_trees(LOWER, upper({"main.py": None, "main.py/inner.py": (FILE, A)}))
    assert diff.changed == {"main.py/inner.py": (FILE, A)} and diff.whiteouts == ()


def test_a_directory_that_becomes_a_file_needs_no_whiteout_below_it():
    tree = upper({"pkg/one.py": None, "pkg/two.py": None, "pkg": (FILE, C)})
    diff = diff_trees(LOWER, tree)
    assert diff.changed == {"pkg": (FILE, C)} and diff.whiteouts == ()


def test_the_digest_names_content_not_order():
    digest = tree_digest(LOWER)
    assert tree_digest(dict(reversed(list(LOWER.items())))) == digest
    assert tree_digest(upper({"main.py": (EXECUTABLE, A)})) != digest
    assert tree_digest(upper({"main.py": (FILE, B)})) != digest
    assert tree_digest(upper({"main.py": None, "Main.py": (FILE, A)})) != digest
    assert len(digest) == 64 and tree_digest({}) != digest
