"""The base image's dependency input is the resolved set: what pyproject.toml says besides
the dependencies changes nothing, a changed set changes the checksum, and the hook that
installs the project is part of the base image."""

from __future__ import annotations

import shutil
from pathlib import Path

from builder.images.inputs import gather_base
from builder.images.parent import Parent
from builder.images.wheelhouse import Target
from builder.state.settings import load_settings

TARGET = Target("cpython", "3.11.2", "x86_64", "linux", "glibc", "2.36")
PARENT = Parent("python:3.11-slim", "sha256:" + "a" * 64, TARGET)
PROJECTS = Path(__file__).resolve().parents[2] / "fixtures" / "projects"


def copy(tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    shutil.copytree(PROJECTS / name, target)
    return target


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def checksum(project: Path) -> str:
    return gather_base(load_settings(project), PARENT, {}).checksum


def test_poetry_lock_set_is_the_input_not_the_files(tmp_path):
    project = copy(tmp_path, "poetry_app")
    recipe = gather_base(load_settings(project), PARENT, {})
    (requirement,) = recipe.requirements
    assert requirement.data.decode().startswith("attrs==26.1.0 --hash=sha256:")
    assert recipe.dependencies is not None and recipe.dependencies.source.kind == "poetry.lock"
    before = recipe.checksum
    edit(project / "pyproject.toml", 'version = "3.0.0"', 'version = "3.0.1"')
    edit(project / "pyproject.toml", 'description = "poetry with poetry.lock"', 'description = "x"')
    edit(project / "poetry_app" / "cli.py", "poetry-hello", "poetry-hello-2")
    assert checksum(project) == before
    edit(project / "poetry.lock", 'version = "26.1.0"', 'version = "26.1.1"')  # another pin
    assert checksum(project) != before


def test_declared_dependencies_are_the_input(tmp_path):
    project = copy(tmp_path, "flat_setuptools")
    before = checksum(project)
    edit(project / "pyproject.toml", 'version = "2.0.0"', 'version = "2.1.0"')
    edit(project / "pyproject.toml", "[project.scripts]\n",
         '[project.scripts]\nother = "flat_app:main"\n')
    assert checksum(project) == before
    edit(project / "pyproject.toml", 'dependencies = ["six>=1.16"]',
         'dependencies = ["six>=1.16", "idna"]')
    assert checksum(project) != before


def test_the_base_holds_the_project_hook_unless_told_not_to(tmp_path):
    project = copy(tmp_path, "requirements_app")
    recipe = gather_base(load_settings(project), PARENT, {})
    assert recipe.project_dir == "/app/.builder-project"
    assert "ENV BUILDER_PROJECT_DIR=/app/.builder-project PATH=/app/.builder-project/bin:$PATH" \
        in recipe.dockerfile
    names = recipe.context(tmp_path, {}).names
    assert "project-hook/opt/builder-project-hook/_builder_project.py" in names
    (project / "builder.yaml").write_text("name: req-app\ninstall_project: false\n")
    recipe_off = gather_base(load_settings(project), PARENT, {})
    assert recipe_off.project_dir == "" and "BUILDER_PROJECT_DIR" not in recipe_off.dockerfile
    assert recipe_off.checksum != recipe.checksum
