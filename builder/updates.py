"""A cached tree brought to a newer commit of the same repository: listings in, tree out.

A container that starts at a new commit usually finds an earlier commit of the same
repository in the cache. When the two commits' listings differ in a few files, only those are
fetched, each checked against its git blob id, and the rest is linked from the cached tree.
The result is the tree a full download gives. The update declines (the caller then downloads
in full) when that is not sure or not cheaper:

- a submodule (a gitlink or `.gitmodules`) in either listing;
- a changed `.dockerignore`: the cached tree was filtered by the old one;
- an empty listing (the subdirectory is gone: the full download says so);
- more than MAX_FETCHED changed files, or more than a quarter of the tree.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from builder.archives import TreeWriter
from builder.download import GITLINK, Listing
from builder.errors import IntegrityError
from builder.gitobjects import blob_sha

MAX_FETCHED = 64
_SYMLINK, _EXECUTABLE = "120000", "100755"


@dataclass(frozen=True)
class UpdatePlan:
    keep: Listing  # the same in both commits: linked from the cached tree
    fetch: Listing  # new or changed: fetched by blob id


def plan_update(old: Listing, new: Listing) -> UpdatePlan | None:
    """What to link and what to fetch; None when a full download is the better way."""
    if not new:
        return None
    if ".gitmodules" in old or ".gitmodules" in new:
        return None
    if any(mode == GITLINK for mode, _ in (*old.values(), *new.values())):
        return None
    if old.get(".dockerignore") != new.get(".dockerignore"):
        return None
    keep = {path: entry for path, entry in new.items() if old.get(path) == entry}
    fetch = {path: entry for path, entry in new.items() if old.get(path) != entry}
    if len(fetch) > min(MAX_FETCHED, max(8, len(new) // 4)):
        return None
    return UpdatePlan(keep, fetch)


def build_updated_tree(
    cached: Path, target: Path, plan: UpdatePlan, blob: Callable[[str], bytes], *, what: str
) -> None:
    """Write the new commit's tree into the empty directory `target`.

    A kept path that is missing from the cached tree was removed there by `.dockerignore`
    (unchanged, so it would be removed again) and is skipped.
    """
    writer = TreeWriter(target)
    for path in sorted(plan.keep):
        source = cached / path
        if os.path.lexists(source):
            writer.existing(path, source)
    for path, (mode, sha) in sorted(plan.fetch.items()):
        data = blob(sha)
        algorithm = "sha256" if len(sha) == 64 else "sha1"
        if blob_sha(data, algorithm) != sha:
            raise IntegrityError(f"{what}: {path}: the server's blob does not match id {sha}")
        if mode == _SYMLINK:
            writer.symlink(path, data.decode("utf-8", "surrogateescape"))
        else:
            writer.file(path, 0o755 if mode == _EXECUTABLE else 0o644, data)
    writer.finish()
