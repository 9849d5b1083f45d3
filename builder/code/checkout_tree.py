"""The shipped tree of a git checkout, as its commit's tree plus what differs from it.

A bake puts the project's files in two layers: the commit's tree, which every uncommitted
iteration on that commit shares, and a small layer with what differs. This module reads both
trees as git listings (path -> (mode, blob id)), without reading the files that git already
knows to be unchanged:

- `committed`: the commit's files below the project directory, minus what the commit's own
  `.dockerignore` excludes. This is exactly the tree a download of the commit gives.
- `working`: the files that ship now (DESIGN principle 3: tracked and untracked files that git
  does not ignore, minus what the work tree's `.dockerignore` excludes). A file that git reports
  unchanged keeps the commit's entry; any other is hashed from the work tree.

The commit's blobs are read from git (`CatFile`), the other files from the work tree.
`read_checkout_tree` answers None when the two layers cannot describe the tree exactly: a
submodule below the project, a commit whose `.dockerignore` git cannot parse, or files that
git writes differently from their blobs (a content filter such as Git LFS, line endings
converted to CRLF, `ident`, another working-tree encoding), where what the developer sees is
the work tree's. The caller then bakes every file from the work tree in one layer.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path
from typing import NamedTuple

from builder.code.dockerignore import IGNORE_FILE, DockerIgnore
from builder.code.files import describe, git_paths
from builder.code.gitcmd import CatFile, GitProcess, split_z, start_git
from builder.code.treediff import SHIPPED_MODES, SYMLINK, Listing, TreeDiff, diff_trees, tree_digest
from builder.errors import UsageError

# What may make git write a file differently from its blob (gitattributes(5)).
_CONVERTING = ("filter", "text", "eol", "ident", "working-tree-encoding")
_CONVERSION_CONFIG = ("config", "-z", "--get-regexp", r"^core\.(autocrlf|eol|attributesfile)$")


class CheckoutTree(NamedTuple):
    top: Path  # the checkout's top level (git runs there)
    project_dir: Path
    commit: str
    committed: Listing  # paths relative to the project directory
    working: Listing
    from_work_tree: frozenset[str]  # working paths whose content is read from the work tree

    @property
    def algorithm(self) -> str:
        return "sha256" if len(self.commit) == 64 else "sha1"

    @property
    def committed_digest(self) -> str:
        return tree_digest(self.committed)

    @property
    def working_digest(self) -> str:
        return tree_digest(self.working)

    def diff(self) -> TreeDiff:
        return diff_trees(self.committed, self.working)

    def blobs(self) -> CatFile:
        """A reader of the checkout's objects (close it, or use it as a context manager)."""
        return CatFile(self.top)


def read_checkout_tree(top: Path, project_dir: Path, commit: str,
                       changed: Collection[str]) -> CheckoutTree | None:
    """Both trees of the project at `project_dir` in the checkout at `top`, checked out at
    `commit`. `changed` holds the paths (relative to the project directory) that git reports
    as differing from the commit or untracked; every other path is taken as the commit has it.
    """
    subdirectory = project_dir.relative_to(top).as_posix()
    subdirectory = "" if subdirectory == "." else subdirectory
    args = ["ls-tree", "-r", "-z", "--full-tree", commit]
    listing_process = start_git([*args, "--", subdirectory] if subdirectory else args, top)
    config = start_git(_CONVERSION_CONFIG, top)
    attributes = start_git(["rev-parse", "--git-path", "info/attributes"], top)
    candidates = git_paths(project_dir)
    listing = _listing(listing_process.result(), subdirectory)
    if listing is None or _converts(top, project_dir, subdirectory, listing, config,
                                    attributes):
        return None
    committed = _committed(top, listing)
    if committed is None:
        return None
    shipped = sorted(DockerIgnore.load(project_dir).filter(candidates))
    differing = set(changed)
    working: Listing = {}
    to_hash: list[str] = []
    for path in shipped:
        entry = listing.get(path)
        if entry is not None and path not in differing:
            working[path] = entry
        else:
            to_hash.append(path)
    algorithm = "sha256" if len(commit) == 64 else "sha1"
    for found in describe(project_dir, to_hash, algorithm):
        working[found.path] = (found.git_mode, found.oid)
    return CheckoutTree(top, project_dir, commit, committed, working, frozenset(to_hash))


def _converts(top: Path, project_dir: Path, subdirectory: str, listing: Listing,
              config: GitProcess, attributes: GitProcess) -> bool:
    """Whether git may write some file of `listing` differently from its blob."""
    settings = {}
    for item in split_z(config.wait()[1]):
        key, _, value = item.partition("\n")
        settings[key.lower()] = value.strip().lower()
    if settings.get("core.autocrlf") in ("true", "1", "yes", "on"):
        return True
    files = [Path(attributes.result().decode().strip()), _global_attributes(settings)]
    folder = project_dir
    while True:  # the project's own folders and those above it, up to the top level
        files.append(folder / ".gitattributes")
        if folder == top:
            break
        folder = folder.parent
    if not any(path.rsplit("/", 1)[-1] == ".gitattributes" for path in listing) and not any(
            (top / path).is_file() for path in files):
        return False
    prefix = f"{subdirectory}/" if subdirectory else ""
    paths = "".join(f"{prefix}{path}\0" for path in listing).encode()
    answer = split_z(start_git(["check-attr", "-z", "--stdin", *_CONVERTING], top,
                               stdin=paths).result())
    crlf = settings.get("core.eol") == "crlf"
    for index in range(0, len(answer) - 2, 3):
        attribute, value = answer[index + 1], answer[index + 2]
        if value in ("unspecified", "unset"):
            continue
        if attribute in ("filter", "working-tree-encoding") or (
                attribute == "ident" and value == "set") or (
                attribute == "eol" and value == "crlf") or (
                attribute == "text" and crlf):
            return True
    return False


def _global_attributes(settings: dict[str, str]) -> Path:
    configured = settings.get("core.attributesfile")
    if configured:
        return Path(os.path.expanduser(configured))
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    return Path(base) / "git" / "attributes"


def _listing(output: bytes, subdirectory: str) -> Listing | None:
    prefix = f"{subdirectory}/" if subdirectory else ""
    listing: Listing = {}
    for record in output.split(b"\0"):
        if not record:
            continue
        meta, _, name = record.partition(b"\t")
        mode, _kind, oid = meta.decode("ascii").split()
        if mode not in SHIPPED_MODES:
            return None  # a submodule: its files come from its own checkout
        path = name.decode("utf-8", "surrogateescape")
        listing[path[len(prefix):]] = (mode, oid)
    return listing


def _committed(top: Path, listing: Listing) -> Listing | None:
    """The listing minus what its own `.dockerignore` excludes; None if that file is bad."""
    entry = listing.get(IGNORE_FILE)
    if entry is None:
        return dict(listing)
    if entry[0] == SYMLINK:
        return None
    with CatFile(top) as blobs:
        text = blobs.read(entry[1]).decode("utf-8", "surrogateescape")
    try:
        ignore = DockerIgnore.from_lines(text.split("\n"))
    except UsageError:
        return None
    return {path: value for path, value in listing.items() if not ignore.excluded(path)}
