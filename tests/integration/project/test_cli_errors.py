"""Bad project files through the real `builder` command: one line naming the file, exit 2,
before any engine is asked."""

from __future__ import annotations

import pytest

from tests.gitworld import GitWorld


@pytest.mark.parametrize(("files", "command", "message"), [
    ({"pyproject.toml": '[project]\nname = "a"\ndependencies = ["six"\n'}, "status",
     "pyproject.toml: invalid TOML: "),
    ({"pyproject.toml": '[project]\nname = "a"\nversion = "1"\n[build-system]\n'
      'build-backend = "maturin"\n'}, "build",
     "pyproject.toml: key 'build-system.build-backend': 'maturin' builds compiled code"),
    ({"pyproject.toml": '[project\n', "requirements.txt": "six\n"}, "build",
     "pyproject.toml: invalid TOML: "),
    ({"uv.lock": "version = 1\n"}, "status", "uv.lock: there is no pyproject.toml beside it"),
    ({"pyproject.toml": '[tool.poetry]\nname = "a"\nversion = "1"\npackages = [{include = "a", '
      'to = "b"}]\n'}, "run", "key 'tool.poetry.packages': `to = 'b'`"),
])
def test_one_line_naming_the_file_and_exit_2(tmp_path, files, command, message):
    world = GitWorld(tmp_path)
    project = world.project(files={**files, "main.py": "print(1)\n"})
    done = world.builder(command, str(project), env={"DOCKER_HOST": "unix:///nonexistent"})
    assert done.code == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith(f"builder: error: {project}/") and message in lines[-1]
    assert "Traceback" not in done.stderr
    assert not (world.home / "runs").exists()  # nothing recorded for bad input
