"""A cached tree brought to a newer commit of the same repository: listings in, tree out.

A container that starts at a new commit usually finds an earlier commit of the same
repository in the cache. When the two commits' listings differ in a few files, only those are
fetched, each checked against its git blob id, and the rest is linked from the cached tree.
The changes come from the two commits' listings (github) or a compare API (gitlab).
The result is the tree a full download gives. The update declines (the caller then downloads
in full) when that is not sure or not cheaper:

- a submodule (a gitlink or `.gitmodules`) in either listing;
- a changed `.dockerignore`: the cached tree was filtered by the old one;
- an empty listing (the subdirectory is gone: the full download says so);
- more than MAX_FETCHED changed files, or more than a quarter of the tree.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from builder.code.archives import TreeWriter
from builder.code.download import GITLINK, Listing
from builder.code.gitobjects import blob_sha
from builder.errors import IntegrityError

MAX_FETCHED = 64
_SYMLINK, _EXECUTABLE = "120000", "100755"

#: What an update fetches: a path -> (its git mode, the data and the blob id it must match).
Fetch = Callable[[str], tuple[bytes, str]]


@dataclass(frozen=True)
class UpdatePlan:
    keep: tuple[str, ...]  # unchanged: linked from the cached tree where it is there
    fetch: dict[str, str]  # new or changed: path -> git mode


def plan_update(old: Listing, new: Listing, *, limited: bool = True) -> UpdatePlan | None:
    """From the two commits' listings (path -> (mode, blob id)); None: download in full.

    `limited=False` lifts the bound on changed files, for a fetch whose cost does not grow
    by a request per file (git's: one pack of what changed).
    """
    if any(mode == GITLINK for mode, _ in (*old.values(), *new.values())):
        return None
    changed = {path: entry[0] for path, entry in new.items() if old.get(path) != entry}
    deleted = [path for path in old if path not in new]
    keep = tuple(path for path in new if path not in changed)
    return _checked(UpdatePlan(keep, changed), [*changed, *deleted], old.keys() | new.keys(),
                    limited=limited)


def plan_from_changes(
    cached: Iterable[str], changes: Mapping[str, str | None]
) -> UpdatePlan | None:
    """From the cached tree's paths and the changed paths (path -> new mode, None when
    deleted), as a compare API gives them; None: download in full."""
    if any(mode == GITLINK for mode in changes.values()):
        return None
    present = set(cached)
    fetch = {path: mode for path, mode in changes.items() if mode is not None}
    keep = tuple(path for path in present if path not in changes)
    return _checked(UpdatePlan(keep, fetch), list(changes), present | fetch.keys())


def _checked(plan: UpdatePlan, touched: list[str], every: Collection[str], *,
             limited: bool = True) -> UpdatePlan | None:
    if not plan.keep and not plan.fetch:
        return None
    if ".gitmodules" in every or ".dockerignore" in touched:
        return None
    if limited and len(plan.fetch) > min(MAX_FETCHED, max(8, len(every) // 4)):
        return None
    return plan


def cached_paths(root: Path) -> list[str]:
    """The files and symlinks of a cached tree, as posix paths relative to it."""
    from builder.state.trees import walk

    return [folder.prefix + entry.name for folder in walk(root) for entry in folder.files]


def build_updated_tree(cached: Path, target: Path, plan: UpdatePlan, fetch: Fetch, *,
                       what: str) -> None:
    """Write the new commit's tree into the empty directory `target`.

    A kept path that is missing from the cached tree was removed there by `.dockerignore`
    (unchanged, so it would be removed again) and is skipped.
    """
    writer = TreeWriter(target)
    for path in sorted(plan.keep):
        source = cached / path
        if os.path.lexists(source):
            writer.existing(path, source)
    _write_fetched(writer, plan.fetch, fetch, what)
    writer.finish()


def write_fetched_tree(target: Path, files: Mapping[str, str], fetch: Fetch, *,
                       what: str) -> None:
    """Write a whole tree (path -> git mode) into the empty directory `target`, every file
    fetched and checked against its blob id."""
    writer = TreeWriter(target)
    _write_fetched(writer, files, fetch, what)
    writer.finish()


def _write_fetched(writer: TreeWriter, files: Mapping[str, str], fetch: Fetch,
                   what: str) -> None:
    for path, mode in sorted(files.items()):
        data, blob_id = fetch(path)
        algorithm = "sha256" if len(blob_id) == 64 else "sha1"
        if blob_sha(data, algorithm) != blob_id:
            raise IntegrityError(f"{what}: {path}: the server's blob does not match id {blob_id}")
        if mode == _SYMLINK:
            writer.symlink(path, data.decode("utf-8", "surrogateescape"))
        else:
            writer.file(path, 0o755 if mode == _EXECUTABLE else 0o644, data)


def write_update(directory: str | os.PathLike[str], cached: Path, plan: UpdatePlan,
                 fetch: Fetch, *, what: str, expected: Callable[[], Listing] | None,
                 blob: Callable[[str], bytes] | None = None) -> int:
    """Write the updated tree into `directory` atomically; with `expected` (the commit's
    listing), verify it as a full download would (`blob` reads Git LFS pointers, see
    `verify_tree`). Returns how many files were fetched.

    `fetch` should refuse a Git LFS pointer: whether the archive holds a pointer or the content
    is the server's choice, so an update that fetched one could differ from a full download."""
    from builder.code.download import fetch_atomically, verify_tree

    def write(target: Path) -> None:
        build_updated_tree(cached, target, plan, fetch, what=what)
        if expected is not None:
            verify_tree(target, expected(), what=what, blob=blob)

    fetch_atomically(directory, write)
    return len(plan.fetch)
