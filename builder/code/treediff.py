"""Shipped trees as git listings: their digest, and what a layer must hold to turn one into
another.

A tree is a `Listing` (posix path -> (git mode, blob id)), with only files ("100644"),
executables ("100755") and symlinks ("120000"). Its digest names its content: the same files,
modes and contents give the same digest, however they were reached (a commit, a commit plus
edits, a folder outside git).

`diff_trees(lower, upper)` says what a layer on top of `lower` must hold so that the files seen
through it are exactly `upper`: the entries that are new or differ, and whiteouts for what is
gone. A whiteout hides a whole directory when nothing of `upper` lies below it. A path that
becomes a directory (or stops being one) needs no whiteout: the layer's entry of the other kind
replaces the lower one (OCI image spec, "Changesets"; overlayfs shows an upper directory over a
lower file without merging).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import NamedTuple

#: posix path -> (git mode, blob id), as `git ls-tree -r` prints it
Listing = dict[str, tuple[str, str]]

FILE, EXECUTABLE, SYMLINK = "100644", "100755", "120000"
SHIPPED_MODES = (FILE, EXECUTABLE, SYMLINK)
DIGEST_VERSION = "builder-tree-v2"


def tree_digest(listing: Mapping[str, tuple[str, str]]) -> str:
    """A sha256 hex digest of the paths, modes and blob ids, in path order."""
    digest = hashlib.sha256(DIGEST_VERSION.encode() + b"\n")
    for path in sorted(listing):
        mode, oid = listing[path]
        name = path.encode("utf-8", "surrogateescape")
        digest.update(b"%s %d:%s %s\n" % (mode.encode(), len(name), name, oid.encode()))
    return digest.hexdigest()


class TreeDiff(NamedTuple):
    changed: Listing  # new or different entries of the upper tree
    whiteouts: tuple[str, ...]  # paths of the lower tree to hide (files or whole directories)

    @property
    def empty(self) -> bool:
        return not self.changed and not self.whiteouts


def diff_trees(lower: Mapping[str, tuple[str, str]],
               upper: Mapping[str, tuple[str, str]]) -> TreeDiff:
    """What a layer over `lower` holds to show exactly `upper` (see the module's doc)."""
    changed = {path: entry for path, entry in upper.items() if lower.get(path) != entry}
    upper_dirs = _directories(upper)
    hidden: set[str] = set()
    for path in lower:
        if path in upper or path in upper_dirs:
            continue
        # The highest ancestor that nothing of `upper` lies below (or the path itself); none
        # when an ancestor is a file of `upper`, which replaces the whole lower directory.
        parts = path.split("/")
        for depth in range(1, len(parts) + 1):
            prefix = "/".join(parts[:depth])
            if prefix in upper:
                break
            if prefix not in upper_dirs:
                hidden.add(prefix)
                break
    return TreeDiff(changed, tuple(sorted(hidden)))


def _directories(listing: Mapping[str, tuple[str, str]]) -> set[str]:
    found: set[str] = set()
    for path in listing:
        parent = path.rpartition("/")[0]
        while parent and parent not in found:
            found.add(parent)
            parent = parent.rpartition("/")[0]
    return found
