"""uv.lock with the real uv (builder's `uv` extra): the export, the stale lock, the cache."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from builder.errors import UsageError
from builder.project.uvlock import uv_pins

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "projects" / "uv_src"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    target = tmp_path / "uv_src"
    shutil.copytree(FIXTURE, target)
    return target


def names(lines: list[str]) -> list[str]:
    return [line.split(" ")[0] for line in lines]


def test_the_export_is_the_locked_set_without_the_project_or_dev(project, tmp_path):
    assert names(uv_pins(project)) == ["idna==3.20"]
    assert names(uv_pins(project, ("fmt",))) == ["idna==3.20", "six==1.17.0"]
    assert names(uv_pins(project, (), ("dev",))) == ["idna==3.20", "iniconfig==2.3.1"]
    assert all(" --hash=sha256:" in line for line in uv_pins(project, ("fmt",)))


def test_a_version_bump_relocked_exports_the_same_set(project):
    before = uv_pins(project, ("fmt",))
    for name in ("pyproject.toml", "uv.lock"):  # what `uv version 1.0.1` changes
        path = project / name
        text = path.read_text()
        old = 'name = "uv-app"\nversion = "1.0.0"' if name == "uv.lock" else 'version = "1.0.0"'
        assert old in text
        path.write_text(text.replace(old, old.replace("1.0.0", "1.0.1")))
    assert uv_pins(project, ("fmt",)) == before


@pytest.mark.parametrize("change", [
    ('"idna>=3"', '"idna>=3.1"'),  # a dependency
    ('version = "1.0.0"', 'version = "1.0.1"'),  # the version, without `uv lock`
])
def test_a_lock_that_does_not_match_is_one_line_naming_it(project, change):
    path = project / "pyproject.toml"
    path.write_text(path.read_text().replace(*change))
    with pytest.raises(UsageError) as caught:
        uv_pins(project)
    lock = project / "uv.lock"
    assert str(caught.value) == f"{lock}: does not match pyproject.toml: run `uv lock`"


def test_an_unknown_extra_names_builder_yaml_keys(project):
    with pytest.raises(UsageError, match=r"Extra `nope` is not defined .* \(builder.yaml keys"):
        uv_pins(project, ("nope",))


def test_the_export_is_remembered_by_the_files_it_read(project, tmp_path):
    cache = tmp_path / "cache"
    first = uv_pins(project, ("fmt",), cache=cache)
    (entry,) = cache.iterdir()
    entry.write_text("remembered==1\n")  # proves the next answer comes from the cache
    assert uv_pins(project, ("fmt",), cache=cache) == ["remembered==1"]
    assert uv_pins(project, (), cache=cache) == first[:1]  # other choices: another entry
    lock = project / "uv.lock"
    lock.write_text(lock.read_text() + "\n")
    assert uv_pins(project, ("fmt",), cache=cache) == first  # other bytes: uv asked again


def test_a_uv_that_cannot_run_is_one_line(project, tmp_path, monkeypatch):
    fake = tmp_path / "uv"
    fake.write_text("")
    monkeypatch.setenv("BUILDER_UV", str(fake))
    with pytest.raises(UsageError, match=r"uv \(.*\) cannot be run"):
        uv_pins(project)


def test_the_base_checksum_follows_the_export(project):
    from builder.images.inputs import gather_base
    from builder.images.parent import Parent
    from builder.images.wheelhouse import Target
    from builder.state.settings import load_settings

    parent = Parent("python:3.11-slim", "sha256:" + "a" * 64,
                    Target("cpython", "3.11.2", "x86_64", "linux", "glibc", "2.36"))

    def checksum() -> str:
        return gather_base(load_settings(project), parent, {}).checksum

    before = checksum()
    for name, old in (("pyproject.toml", 'version = "1.0.0"'),
                      ("uv.lock", 'name = "uv-app"\nversion = "1.0.0"')):
        path = project / name
        path.write_text(path.read_text().replace(old, old.replace("1.0.0", "2.0.0")))
    assert checksum() == before  # a version bump, relocked
    (project / "builder.yaml").write_text("name: uv-src\n")  # without the `fmt` extra
    assert checksum() != before
