"""A `.dockerignore` that is a symlink out of the project is never read (so none of its
lines can appear in a message); one that links to a file inside the project is. Real git,
the real `builder status`."""

from __future__ import annotations

import os

from tests.gitworld import GitWorld, git

OUTSIDE_LINE = "db_password=hunter2["  # also an invalid pattern: it would be quoted in the error


def test_a_dockerignore_linking_out_of_the_project_is_not_followed(tmp_path):
    world = GitWorld(tmp_path)
    outside = tmp_path / "outside.txt"
    outside.write_text(OUTSIDE_LINE + "\n")
    project = world.project(remote=world.bare("app"))
    os.symlink(outside, project / ".dockerignore")
    done = world.builder("status", str(project), "--json")
    assert done.code == 2, done.stderr
    assert "hunter2" not in done.stdout + done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("builder: error: ")
    assert "symlink" in lines[0] and ".dockerignore" in lines[0]


def test_a_dockerignore_linking_inside_the_project_is_read(tmp_path):
    world = GitWorld(tmp_path)
    project = world.project(remote=world.bare("app"), files={
        "main.py": "print(1)\n", "ignore-list": "notes.txt\n"})
    os.symlink("ignore-list", project / ".dockerignore")
    (project / "notes.txt").write_text("scratch\n")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "ignore list")
    git(project, "push", "-q")
    (project / "notes.txt").write_text("changed\n")  # ignored, so the project stays clean
    status = world.status(project)
    assert status["dirty_files"] == [], status
