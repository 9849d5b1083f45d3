"""Bake: the project's files as layers on the base image, in proportion to the change.

In a git checkout the baked image is the base image, plus a layer with the commit's tree (its
own `.dockerignore` applied: the tree a download of the commit gives), plus a small layer with
what differs from it: the modified and untracked files, and whiteouts for what is gone
(deleted, renamed away, newly `.dockerignore`d). The base image plus the first layer is the
*tree image*, `<name>:tree-<key>`, built and pushed once per tree; every uncommitted iteration
on that commit builds and pushes only the small layer. Outside git, in a repository without
commits, or with a submodule below the project, a single layer holds every file.

Images are named by the content they show: the tree image by the commit's shipped tree, the
code image by the whole shipped tree (`treediff.tree_digest`), each with the base image and
the code dir. An identical tree is never built twice, however it was reached.

The layers are tars that builder writes and loads (`builder.images.layers`); the commit's files
come from git's objects, the changed ones from the work tree, checked against the blob ids
that named the image while they are copied.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builder.code.checkout_tree import CheckoutTree, read_checkout_tree
from builder.code.files import FileSet, file_set
from builder.code.gitcmd import CatFile
from builder.code.gitobjects import blob_sha
from builder.code.treediff import EXECUTABLE, SYMLINK, Listing
from builder.errors import BuilderError
from builder.images import names
from builder.images.checksum import code_key
from builder.images.context import ContextBuilder
from builder.images.layers import Layer, load_image
from builder.images.lookup import ImageBuilds

# The layers' layout: bump it when the tars change, so that no older image is taken for one.
LAYOUT = "builder-layers-v1: commit tree + difference, code dir ancestors 0755, fixed times"
LABEL_PREFIX = names.LABEL_PREFIX


@dataclass(frozen=True)
class BakePlan:
    """What a bake ships: the whole tree's hash, and either both trees or every file."""

    content_hash: str
    tree: CheckoutTree | None
    files: FileSet | None


def plan_bake(project_dir: Path, checkout: tuple[Path, str, list[str]] | None) -> BakePlan:
    """`checkout`: (top level, commit, paths git reports changed below the project), or None
    outside git or without commits."""
    if checkout is not None:
        top, commit, changed = checkout
        tree = read_checkout_tree(top, project_dir, commit, changed)
        if tree is not None:
            return BakePlan(tree.working_digest, tree, None)
    files = file_set(project_dir)
    return BakePlan(files.digest, None, files)


def image_key(checksum: str, content_hash: str, code_dir: str) -> str:
    return code_key(checksum, content_hash, code_dir, LAYOUT)


def bake(builds: ImageBuilds, plan: BakePlan, *, name: str, registry: str | None,
         checksum: str, base: str, code_dir: str, labels: Mapping[str, str],
         force: bool = False, install: tuple[dict[str, Any], str] | None = None) -> str:
    """Find or build the code image for `plan` on `base`; return its reference.

    `install` is (the project as it is installed, the install's folder in the image): its
    files go into the top layer, beside the code, as the entrypoint writes them in reuse mode
    (when a pyproject.toml ships). They follow from the shipped files, the base image and the
    code dir, which the image's key covers already."""
    code = names.code_ref(name, registry, image_key(checksum, plan.content_hash, code_dir))
    code_labels = {**labels, LABEL_PREFIX + "role": "code",
                   LABEL_PREFIX + "content-hash": plan.content_hash}
    shipped = plan.tree.working if plan.tree is not None else \
        plan.files.listing if plan.files is not None else {}
    extra = _install_files(install, code_dir) if "pyproject.toml" in shipped else []

    def build_code() -> None:
        if plan.tree is not None:
            parent = _ensure_tree_image(builds, plan.tree, name=name, registry=registry,
                                        checksum=checksum, base=base, code_dir=code_dir,
                                        labels=labels)
            diff = plan.tree.diff()
            what = (f"{len(diff.changed)} changed file{'' if len(diff.changed) == 1 else 's'}"
                    f" and {len(diff.whiteouts)} removal{'' if len(diff.whiteouts) == 1 else 's'}"
                    f" on {parent}")
            with plan.tree.blobs() as blobs:
                layer = _difference_layer(plan.tree, code_dir, blobs, extra) \
                    if not diff.empty or extra else None
                _load(builds, parent, [layer] if layer else [], code_labels, code,
                      f"baking {what} into {code}")
        else:
            assert plan.files is not None
            layer = _files_layer(plan.files, code_dir, extra)
            _load(builds, base, [layer], code_labels, code,
                  f"baking {len(plan.files.entries)} files into {code}")

    builds.ensure(code, "code image", build_code, force=force)
    return code


def _ensure_tree_image(builds: ImageBuilds, tree: CheckoutTree, *, name: str,
                       registry: str | None, checksum: str, base: str, code_dir: str,
                       labels: Mapping[str, str]) -> str:
    digest = tree.committed_digest
    ref = names.tree_ref(name, registry, image_key(checksum, digest, code_dir))
    tree_labels = {**labels, LABEL_PREFIX + "role": "tree", LABEL_PREFIX + "content-hash": digest,
                   LABEL_PREFIX + "dirty": "false"}

    def build_tree() -> None:
        with tree.blobs() as blobs:
            layer = _git_layer(tree.committed, code_dir, blobs, f"tree of {tree.commit[:12]}")
            _load(builds, base, [layer], tree_labels, ref,
                  f"baking the {len(tree.committed)} files of commit {tree.commit[:12]} "
                  f"into {ref}")

    builds.ensure(ref, "commit's tree image", build_tree)
    return ref


def _load(builds: ImageBuilds, parent: str, layers: list[Layer], labels: Mapping[str, str],
          ref: str, title: str) -> None:
    import time

    started = time.perf_counter()
    builds.progress.start(title)
    try:
        _, spec = load_image(builds.engine, builds.spec(parent), layers, labels, ref)
    except BaseException:
        builds.progress.fail(f"building {ref} failed")
        raise
    builds.remember(ref, spec)
    builds.progress.finish(f"built {ref} in {time.perf_counter() - started:.1f} s")


def _git_layer(listing: Listing, code_dir: str, blobs: CatFile, comment: str) -> Layer:
    context = ContextBuilder()
    target = context.add_rooted("", code_dir)
    for path in sorted(listing):
        _add_blob(context, f"{target}/{path}", listing[path], blobs)
    tar, diff_id = context.to_layer()
    return Layer(tar, diff_id, comment)


def _difference_layer(tree: CheckoutTree, code_dir: str, blobs: CatFile,
                      extra: Sequence[tuple[str, bytes, int]]) -> Layer:
    diff = tree.diff()
    context = ContextBuilder()
    _add_extra(context, extra)
    target = context.add_rooted("", code_dir)
    for path in sorted(diff.changed):
        name = f"{target}/{path}"
        if path not in tree.from_work_tree:
            _add_blob(context, name, diff.changed[path], blobs)
            continue
        mode, oid = diff.changed[path]
        source = tree.project_dir / path
        if mode == SYMLINK:
            link = os.readlink(source)
            if blob_sha(os.fsencode(link), tree.algorithm) != oid:
                raise BuilderError(f"{source}: changed while it was being sent; try again")
            context.add_symlink(name, link)
        else:
            context.add_file(name, source, executable=mode == EXECUTABLE, oid=oid)
    for path in diff.whiteouts:
        context.add_whiteout(f"{target}/{path}")
    tar, diff_id = context.to_layer()
    return Layer(tar, diff_id, f"{len(diff.changed)} changed, {len(diff.whiteouts)} removed")


def _files_layer(files: FileSet, code_dir: str,
                 extra: Sequence[tuple[str, bytes, int]]) -> Layer:
    context = ContextBuilder()
    _add_extra(context, extra)
    target = context.add_rooted("", code_dir)
    for entry in files.entries:
        name = f"{target}/{entry.path}"
        if entry.kind == "symlink":
            context.add_symlink(name, entry.target)
        else:
            context.add_file(name, files.root / entry.path, executable=entry.kind == "exec",
                             oid=entry.oid)
    tar, diff_id = context.to_layer()
    return Layer(tar, diff_id, f"{len(files.entries)} files")


def _install_files(install: tuple[dict[str, Any], str] | None,
                   code_dir: str) -> list[tuple[str, bytes, int]]:
    """The project install's files: (absolute path, content, mode)."""
    if install is None:
        return []
    from builder.project.install import render

    info, folder = install
    return [(f"{folder.rstrip('/')}/{relative}", data, mode)
            for relative, data, mode in render(info, code_dir, folder)]


def _add_extra(context: ContextBuilder, files: Sequence[tuple[str, bytes, int]]) -> None:
    for path, data, mode in files:
        parent = path.rpartition("/")[0]
        target = context.add_rooted("", parent) if parent else ""
        context.add_bytes(f"{target}/{path.rpartition('/')[2]}", data, mode)


def _add_blob(context: ContextBuilder, name: str, entry: tuple[str, str],
              blobs: CatFile) -> None:
    mode, oid = entry
    if mode == SYMLINK:
        context.add_symlink(name, blobs.read(oid).decode("utf-8", "surrogateescape"))
    else:
        context.add_stream(name, lambda: blobs.open(oid), executable=mode == EXECUTABLE)
