"""Bake in proportion to the change, on the real engine and registry.

The baked image is the base, a layer with the commit's tree and a layer with what differs.
Whatever the change, the container's files must be exactly those of a clean commit of the
same files (DESIGN principle 3): `git archive` of a commit of the work tree, with its
`.dockerignore` applied as a download applies it. A second uncommitted iteration on the same
commit builds and uploads only its small layer, counted on a proxy in front of the registry.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from builder.code.download import apply_dockerignore
from tests.gitworld import GitWorld, git
from tests.infra.registry_proxy import RegistryProxy
from tests.integration.images.support import build, built, layers, yaml

pytestmark = pytest.mark.docker

CODE_DIR = "/app/code"
# Prints every entry below a directory: kind, and the content's hash or the link's target.
MANIFEST = r"""
import hashlib, json, os, stat, sys
root = sys.argv[1]
found = {}
for folder, dirs, files in os.walk(root):
    for name in dirs + files:
        full = os.path.join(folder, name)
        mode = os.lstat(full).st_mode
        rel = os.path.relpath(full, root)
        if stat.S_ISLNK(mode):
            found[rel] = ["symlink", os.readlink(full)]
        elif stat.S_ISDIR(mode):
            found[rel] = ["dir"]
        elif stat.S_ISREG(mode):
            with open(full, "rb") as handle:
                digest = hashlib.sha256(handle.read()).hexdigest()
            found[rel] = ["exec" if mode & 0o100 else "file", digest]
        else:
            found[rel] = ["other", oct(mode)]
print(json.dumps(found, sort_keys=True))
"""


def container_files(docker_client: Any, image: str) -> dict[str, list[str]]:
    output = docker_client.containers.run(image, ["python3", "-c", MANIFEST, CODE_DIR],
                                          entrypoint=[], remove=True, network_disabled=True)
    return json.loads(output)


def clean_commit_files(world: GitWorld, work: Path, subdirectory: str) -> dict[str, list[str]]:
    """The files a clean commit of the work tree ships: `git archive` of a tree written from a
    scratch index (the checkout's own index is left alone), `.dockerignore` applied."""
    index = world.root / "scratch-index"
    env = {**os.environ, "GIT_INDEX_FILE": str(index)}
    for args in (["read-tree", "HEAD"], ["add", "-A", "--", "."]):
        subprocess.run(["git", *args], cwd=work, env=env, check=True, capture_output=True)
    tree = subprocess.run(["git", "write-tree"], cwd=work, env=env, check=True,
                          capture_output=True, text=True).stdout.strip()
    index.unlink()
    archive = subprocess.run(["git", "archive", "--format=tar", f"{tree}:{subdirectory}"],
                             cwd=work, check=True, capture_output=True).stdout
    target = world.root / "expected"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir()
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(target)
    apply_dockerignore(target)
    output = subprocess.run([sys.executable, "-c", MANIFEST, str(target)], check=True,
                            capture_output=True, text=True).stdout
    return json.loads(output)


FILES = {
    "requirements.txt": "six\n",
    "main.py": "print('one')\n",
    "tool.py": "print('tool')\n",
    "run.sh": "#!/bin/sh\necho run\n",
    "conf.txt": "setting = 1\n",
    "data.txt": "data\n",
    "secret.txt": "committed, but left out by .dockerignore\n",
    ".dockerignore": "secret.txt\n*.log\n",
    "pkg/one.py": "ONE = 1\n",
    "pkg/two.py": "TWO = 2\n",
    "old/keep.py": "OLD = 1\n",
    "old/deep/x.py": "X = 1\n",
}


def test_every_kind_of_change_gives_the_files_of_a_clean_commit(world, names, docker_client):
    subdirectory = "services/app"
    project = world.project("mono", files={"builder.yaml": yaml(names()), **FILES,
                                           "../../outside.py": "never shipped\n"},
                            subdirectory=subdirectory)
    work = world.root / "mono"
    os.chmod(project / "run.sh", 0o755)
    os.symlink("data.txt", project / "link")
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "modes and a symlink")

    def check(state: str, *, builds_tree: bool = False) -> dict[str, Any]:
        result = built(world, project)
        assert result["mode"] == "bake", result["reasons"]
        tree = [ref for ref in result["built"] if ":tree-" in ref]
        assert bool(tree) == builds_tree, (state, result["built"])
        assert result["built"][-1] == result["image"], state
        expected = clean_commit_files(world, work, subdirectory)
        assert container_files(docker_client, result["image"]) == expected, state
        return result

    clean = check("clean (nothing registered: bake)", builds_tree=True)
    assert "secret.txt" not in container_files(docker_client, clean["image"])
    tree_layers = layers(docker_client, clean["image"])

    (project / "main.py").write_text("print('two')\n")
    (project / "notes").mkdir()
    (project / "notes" / "new.txt").write_text("untracked\n")
    (project / "deep" / "er").mkdir(parents=True)
    (project / "deep" / "er" / "file.py").write_text("Y = 2\n")
    (project / "debug.log").write_text("ignored by .dockerignore\n")
    modified = check("modified and untracked files")
    assert layers(docker_client, modified["image"])[:-1] == tree_layers

    (project / "pkg" / "two.py").unlink()
    shutil.rmtree(project / "old")
    check("a deleted file and a deleted directory")

    git(work, "mv", f"{subdirectory}/pkg/one.py", f"{subdirectory}/pkg/uno.py")
    os.rename(project / "conf.txt", project / "settings.txt")
    check("a staged rename and a plain one")

    os.chmod(project / "tool.py", 0o755)
    os.chmod(project / "run.sh", 0o644)
    check("mode-only changes, both ways")

    (project / "link").unlink()
    os.symlink("main.py", project / "link")
    os.symlink("tool.py", project / "alias")
    (project / "data.txt").unlink()
    os.symlink("settings.txt", project / "data.txt")
    check("a retargeted symlink, a new one, and a file turned into one")

    (project / ".dockerignore").write_text("tool.py\n*.log\n")
    check("a changed .dockerignore: one committed file out, one in again")

    (project / "pkg" / "uno.py").unlink()
    (project / "pkg").rmdir()
    (project / "pkg").write_text("a file where a directory was\n")
    (project / "run.sh").unlink()
    (project / "run.sh").mkdir()
    (project / "run.sh" / "inner.txt").write_text("a directory where a file was\n")
    last = check("a directory turned into a file and a file into a directory")

    # The same files reached another way (committed: a new commit's tree image, no change
    # on it) are the same image, which is not built again.
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "everything")
    again = built(world, project)
    assert again["built"] == [] and again["image"] == last["image"]


def test_a_second_uncommitted_iteration_uploads_only_its_small_layer(world, names,
                                                                    docker_client):
    with RegistryProxy() as proxy:
        name = names()
        project = world.project("work", files={
            "builder.yaml": yaml(name, registry=proxy.address), **FILES,
            **{f"bulk/module_{index:03d}.py": f"VALUE = {index}\n" + "# padding\n" * 400
               for index in range(200)},
        })
        (project / "main.py").write_text("print('first iteration')\n")
        first = built(world, project, "--push")
        base, tree, code = first["built"]
        assert first["pushed"] == [base, tree, code]
        assert ":tree-" in tree and code == first["image"]
        tree_upload = max(u.size for u in proxy.uploads if u.repository == name)

        proxy.reset()
        change = "print('second iteration')\n"
        (project / "main.py").write_text(change)
        (project / "pkg" / "two.py").unlink()
        done = build(world, project, "--push")
        second = done.json()
        assert second["built"] == [second["image"]], done.stderr
        assert second["pushed"] == [second["image"]], done.stderr
        uploads = proxy.uploads
        # One layer (the changed file and a whiteout) and the image's configuration.
        assert len(uploads) == 2, uploads
        assert docker_client.images.get(second["image"]).id in {u.digest for u in uploads}
        assert {u.repository for u in uploads} == {name}
        sent = sum(u.size for u in uploads)
        assert sent <= len(change) + 64_000, uploads
        assert sent * 20 < tree_upload, (sent, tree_upload)
        assert proxy.manifests == [(name, second["image"].rpartition(":")[2])]


def test_a_submodule_below_the_project_bakes_every_file_in_one_layer(world, names,
                                                                   docker_client):
    library = world.project("library", files={"lib.py": "LIB = 1\n"})
    project = world.project("work", files={"builder.yaml": yaml(names()),
                                           "requirements.txt": "six\n", "main.py": "M = 1\n"})
    git(project, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(library),
        "vendor/lib")
    git(project, "commit", "-q", "-m", "add submodule")
    result = built(world, project)
    assert not any(":tree-" in ref for ref in result["built"])
    assert layers(docker_client, result["image"])[:-1] == layers(docker_client,
                                                                 result["base_image"])
    files = container_files(docker_client, result["image"])
    assert files["vendor/lib/lib.py"][0] == "file" and "main.py" in files


def test_files_that_git_converts_are_baked_as_the_work_tree_has_them(world, names,
                                                                    docker_client):
    """With CRLF line endings on checkout (or an LFS filter), the blob is not the file the
    developer sees: the work tree's file ships, in one layer."""
    project = world.project("work", files={"builder.yaml": yaml(names()),
                                           "requirements.txt": "six\n",
                                           "notes.txt": "one\ntwo\n"})
    (project / ".gitattributes").write_text("*.txt eol=crlf\n")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "line endings")
    (project / "notes.txt").unlink()
    git(project, "checkout", "--", "notes.txt")  # written again, with CRLF
    assert (project / "notes.txt").read_bytes() == b"one\r\ntwo\r\n"
    result = built(world, project)
    assert not any(":tree-" in ref for ref in result["built"])
    output = docker_client.containers.run(result["image"], ["cat", f"{CODE_DIR}/notes.txt"],
                                          entrypoint=[], remove=True)
    assert output == b"one\r\ntwo\r\n"
