"""`builder entrypoint` writes the project's install after the download (reuse mode), when
the base image says where (BUILDER_PROJECT_DIR), and remembers what pyproject.toml said."""

from __future__ import annotations

import json
from pathlib import Path

from builder.project.install import read_sidecar
from tests.integration.container.test_entrypoint import entrypoint

PYPROJECT = """[project]
name = "hello-app"
version = "0.3.0"
[project.scripts]
hello = "hello_app:main"
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"
"""


def contract(git_server, tmp_path: Path, files: dict[str, str]) -> dict[str, str]:
    handle = git_server.create_repo("team/proj")
    sha = handle.commit(files, "first")
    handle.push()
    (tmp_path / "token").write_text(git_server.token)
    return {
        "BUILDER_CODE_DIR": str(tmp_path / "app" / "code"),
        "BUILDER_PROJECT_DIR": str(tmp_path / "app" / ".builder-project"),
        "BUILDER_COMMIT": sha,
        "BUILDER_CODE_REPOSITORY": json.dumps(
            {"type": "git", "name": "proj", "config": {"url": f"{git_server.url}/team/proj.git"}}),
        "BUILDER_TOKEN_FILE": str(tmp_path / "token"),
        "BUILDER_CACHE_DIR": str(tmp_path / "cache"),
    }


def test_the_install_is_written_beside_the_code_dir_and_remembered(git_server, tmp_path):
    env = contract(git_server, tmp_path, {"pyproject.toml": PYPROJECT,
                                          "src/hello_app/__init__.py": "def main(): pass\n"})
    done = entrypoint(env, "true")
    assert done.returncode == 0, done.stderr
    project_dir = Path(env["BUILDER_PROJECT_DIR"])
    assert (project_dir / "paths").read_text() == (
        f"{env['BUILDER_CODE_DIR']}/src\n{project_dir}/site\n")
    assert (project_dir / "site" / "hello_app-0.3.0.dist-info" / "METADATA").is_file()
    assert (project_dir / "bin" / "hello").stat().st_mode & 0o111
    # the commit's tree (beside it, the git type's object store: builder.repositories.git_store)
    (entry,) = [p for p in Path(env["BUILDER_CACHE_DIR"]).iterdir()
                if p.is_dir() and not p.name.startswith("git-")]
    known, project = read_sidecar(str(entry))
    assert known and project is not None and project["version"] == "0.3.0"

    # a second start reads the remembered description, not pyproject.toml
    record = Path(f"{entry}.project.json")
    record.write_text(record.read_text().replace('"0.3.0"', '"0.3.9"'))
    done = entrypoint(env, "true")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (project_dir / "site").iterdir()) == ["hello_app-0.3.9.dist-info"]
    assert sorted(p.name for p in project_dir.parent.iterdir()) == [".builder-project", "code"]


def test_without_the_base_image_s_word_nothing_is_written(git_server, tmp_path):
    env = contract(git_server, tmp_path, {"pyproject.toml": PYPROJECT})
    del env["BUILDER_PROJECT_DIR"]
    assert entrypoint(env, "true").returncode == 0
    assert sorted(p.name for p in (tmp_path / "app").iterdir()) == ["code"]


def test_a_pyproject_that_cannot_be_installed_fails_the_start_in_one_line(git_server, tmp_path):
    env = contract(git_server, tmp_path, {"pyproject.toml": "[project\nname = 'x'\n"})
    done = entrypoint(env, "echo", "never")
    assert done.returncode == 2 and "never" not in done.stdout
    assert done.stderr.strip().splitlines()[-1].startswith(
        f"builder: error: {env['BUILDER_CODE_DIR']}/pyproject.toml: invalid TOML: ")
