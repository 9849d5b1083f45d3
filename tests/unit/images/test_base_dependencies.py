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
    assert recipe.requirements.lines[0].startswith("attrs==26.1.0 --hash=sha256:")
    assert recipe.requirements.text().decode() == "".join(
        f"{line}\n" for line in recipe.requirements.lines)
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
    names = recipe.requirement_files(tmp_path, None, tools=False).names
    assert "opt/builder-install/project-hook/_builder_project.py" in names
    assert "_builder_project.pth" in recipe.install.requirements
    (project / "builder.yaml").write_text("name: req-app\ninstall_project: false\n")
    recipe_off = gather_base(load_settings(project), PARENT, {})
    assert recipe_off.project_dir == "" and "BUILDER_PROJECT_DIR" not in recipe_off.dockerfile
    assert recipe_off.checksum != recipe.checksum


def test_status_names_a_changed_lock_pin_resolved_for_the_recorded_parent(tmp_path):
    from builder.images.changes import changes_since_last_build, save_record
    from builder.state.store import Store

    project = copy(tmp_path, "poetry_app")
    store = Store(tmp_path / "home")
    recipe = gather_base(load_settings(project), PARENT, {})
    save_record(store.home, project, {"checksum": recipe.checksum, **recipe.record})
    assert changes_since_last_build(load_settings(project), {}, store) == []
    edit(project / "poetry.lock", 'version = "26.1.0"', 'version = "26.1.1"')
    (change,) = changes_since_last_build(load_settings(project), {}, store)
    assert change["input"] == "requirements"
    assert [line.split()[0] for line in change["added"]] == ["attrs==26.1.1"]
    assert [line.split()[0] for line in change["removed"]] == ["attrs==26.1.0"]
