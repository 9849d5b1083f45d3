"""The base image's checksum: every input counts, as content; order and paths do not."""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
import textwrap
import time
from pathlib import Path

import pytest

from builder.errors import SettingsError, UsageError
from builder.images import wheelhouse
from builder.images.checksum import BaseInputs, checksum, code_key
from builder.images.dockerfile import env_quote, render_base
from builder.images.inputs import gather_base, runtime_needs
from builder.images.install_step import render_install
from builder.images.installers import get_installer
from builder.images.parent import Parent
from builder.images.requirements import collect_requirements, logical_lines
from builder.images.wheelhouse import Target
from builder.repositories.base import BaseCodeRepository
from builder.repositories.git import GitCodeRepository
from builder.repositories.github import GitHubCodeRepository
from builder.state.settings import load_settings

TARGET = Target("cpython", "3.11.2", "x86_64", "linux", "glibc", "2.36")
PARENT = Parent("python:3.11-slim", "sha256:" + "a" * 64, TARGET)

INPUTS = BaseInputs(
    parent_digest="sha256:" + "a" * 64,
    requirements=("r1", "r2"),
    apt_packages=("curl", "git"),
    environment=(("A", "1"), ("B", "2")),
    template="FROM x\n",
    builder_version="0.1.0+abc",
    python_version="3.11.2",
    platform="linux/x86_64 glibc 2.36",
    custom_sources=("c1",),
    runtime_needs=("extra:github",),
)


def project(tmp_path: Path, yaml: str = "", files: dict[str, str] | None = None,
            name: str = "proj") -> Path:
    directory = tmp_path / name
    directory.mkdir(parents=True, exist_ok=True)
    for rel, content in (files or {"requirements.txt": "six==1.16.0\n"}).items():
        (directory / rel).parent.mkdir(parents=True, exist_ok=True)
        (directory / rel).write_text(content)
    (directory / "builder.yaml").write_text("name: demo\n" + textwrap.dedent(yaml))
    return directory


def base_checksum(directory: Path, parent: Parent = PARENT,
                  repositories: dict[str, tuple[str, BaseCodeRepository]] | None = None) -> str:
    return gather_base(load_settings(directory), parent, repositories or {}).checksum


# ---- the pure function ---------------------------------------------------------------------

def test_checksum_is_a_stable_hex_digest():
    assert checksum(INPUTS) == checksum(dataclasses.replace(INPUTS))
    assert len(checksum(INPUTS)) == 64
    int(checksum(INPUTS), 16)


@pytest.mark.parametrize("field, value", [
    ("parent_digest", "sha256:" + "b" * 64),
    ("requirements", ("r1", "r3")),
    ("apt_packages", ("curl",)),
    ("environment", (("A", "1"), ("B", "3"))),
    ("template", "FROM y\n"),
    ("builder_version", "0.1.0+abd"),
    ("python_version", "3.11.3"),
    ("platform", "linux/aarch64 glibc 2.36"),
    ("custom_sources", ("c2",)),
    ("runtime_needs", ("apt:git",)),
    ("installer", "pip"),
])
def test_every_input_changes_the_checksum(field, value):
    assert checksum(dataclasses.replace(INPUTS, **{field: value})) != checksum(INPUTS)


def test_order_without_effect_does_not_count():
    shuffled = dataclasses.replace(
        INPUTS, apt_packages=("git", "curl", "git"),
        environment=(("B", "2"), ("A", "1")), runtime_needs=("extra:github", "extra:github"),
    )
    assert checksum(shuffled) == checksum(INPUTS)
    # the order of requirement lines can steer a resolver: it counts
    assert checksum(dataclasses.replace(INPUTS, requirements=("r2", "r1"))) != checksum(INPUTS)


def test_code_key_depends_on_base_content_code_dir_and_layout():
    key = code_key("base", "content", "/app/code", "v1")
    assert key == code_key("base", "content", "/app/code", "v1")
    assert key != code_key("base2", "content", "/app/code", "v1")
    assert key != code_key("base", "content2", "/app/code", "v1")
    assert key != code_key("base", "content", "/srv", "v1")
    assert key != code_key("base", "content", "/app/code", "v2")


# ---- gathering: contents, never paths ------------------------------------------------------

def test_moving_the_project_keeps_the_checksum(tmp_path):
    first = project(tmp_path, "apt_packages: [curl]\nenvironment: {A: x}\n")
    moved = tmp_path / "elsewhere" / "deeper"
    shutil.copytree(first, moved)
    assert base_checksum(first) == base_checksum(moved)


def test_mtime_does_not_count(tmp_path):
    directory = project(tmp_path)
    before = base_checksum(directory)
    os.utime(directory / "requirements.txt", (1_000_000, 1_000_000))
    assert base_checksum(directory) == before


def test_requirement_content_counts_and_its_file_name_does_not(tmp_path):
    a = project(tmp_path, name="a")
    b = project(tmp_path, "requirements: [deps/reqs.in]\n",
                files={"deps/reqs.in": "six==1.16.0\n"}, name="b")
    c = project(tmp_path, files={"requirements.txt": "six==1.17.0\n"}, name="c")
    assert base_checksum(a) == base_checksum(b)
    assert base_checksum(a) != base_checksum(c)


def test_included_requirement_files_are_inlined_and_constraints_named_by_content(tmp_path):
    directory = project(tmp_path, files={
        "requirements.txt": "-r base/common.txt\n--constraint=pins.txt  # pins\nsix\n",
        "base/common.txt": "-c ../pins.txt\nidna\n",
        "pins.txt": "six==1.16.0\n",
    })
    settings = load_settings(directory)
    requirements = collect_requirements(settings)
    assert len(requirements.files) == 1
    pins, data = requirements.files[0]
    assert data == b"six==1.16.0\n"
    assert requirements.lines == (f"-c {pins}", "idna", f"-c {pins}", "six")
    before = base_checksum(directory)
    (directory / "pins.txt").write_text("six==1.17.0\n")
    assert base_checksum(directory) != before


def test_comments_blank_lines_and_continuations_are_not_requirements(tmp_path):
    assert logical_lines("a==1  # why\n# note\n\nb \\\n>=2\npkg @ https://h/p.whl#sha256=ab\n") \
        == ["a==1", "b >=2", "pkg @ https://h/p.whl#sha256=ab"]
    plain = base_checksum(project(tmp_path, files={"requirements.txt": "six==1.16.0\n"},
                                  name="a"))
    commented = project(tmp_path, files={"requirements.txt": "# pinned\nsix==1.16.0  # ok\n\n"},
                        name="b")
    assert base_checksum(commented) == plain


def test_missing_included_requirement_file_is_a_settings_error(tmp_path):
    directory = project(tmp_path, files={"requirements.txt": "-r missing.txt\n"})
    with pytest.raises(SettingsError, match=r"missing\.txt"):
        collect_requirements(load_settings(directory))


def test_requirement_file_removed_after_loading_is_a_settings_error(tmp_path):
    directory = project(tmp_path)
    settings = load_settings(directory)
    (directory / "requirements.txt").unlink()
    with pytest.raises(SettingsError, match="requirements"):
        collect_requirements(settings)


def test_cyclic_requirement_files_are_an_error(tmp_path):
    directory = project(tmp_path, files={"requirements.txt": "-r b.txt\n",
                                         "b.txt": "-r requirements.txt\n"})
    with pytest.raises(SettingsError, match="cycle"):
        collect_requirements(load_settings(directory))


def test_apt_and_environment_order_does_not_count(tmp_path):
    a = project(tmp_path, "apt_packages: [curl, git]\nenvironment: {A: '1', B: '2'}\n", name="a")
    b = project(tmp_path, "apt_packages: [git, curl]\nenvironment: {B: '2', A: '1'}\n", name="b")
    c = project(tmp_path, "apt_packages: [git]\nenvironment: {B: '2', A: '1'}\n", name="c")
    d = project(tmp_path, "apt_packages: [curl, git]\nenvironment: {A: '1', B: '3'}\n", name="d")
    assert base_checksum(a) == base_checksum(b)
    assert len({base_checksum(a), base_checksum(c), base_checksum(d)}) == 3


def test_settings_that_change_the_image_count(tmp_path):
    plain = base_checksum(project(tmp_path, name="a"))
    assert base_checksum(project(tmp_path, "code_dir: /srv/app\n", name="b")) != plain
    # Settings that are not inputs of the base image do not count.
    assert base_checksum(project(tmp_path, "command: [python, x.py]\nregistry: r:5000\n",
                                 name="c")) == plain


def test_parent_digest_and_python_count(tmp_path):
    directory = project(tmp_path)
    moved_tag = dataclasses.replace(PARENT, id="sha256:" + "b" * 64)
    newer = dataclasses.replace(PARENT, target=dataclasses.replace(TARGET, version="3.11.9"))
    arm = dataclasses.replace(PARENT, target=dataclasses.replace(TARGET, machine="aarch64"))
    sums = {base_checksum(directory, p) for p in (PARENT, moved_tag, newer, arm)}
    assert len(sums) == 4
    renamed = dataclasses.replace(PARENT, name="python:3.11-slim-renamed")
    assert base_checksum(directory, renamed) == base_checksum(directory)


def test_builder_identity_counts(tmp_path, monkeypatch):
    directory = project(tmp_path)
    before = base_checksum(directory)
    monkeypatch.setattr(wheelhouse, "builder_identity", lambda: "9.9.9+other")
    assert base_checksum(directory) != before


# ---- repository types: only what they need -------------------------------------------------

def test_repository_types_add_their_runtime_needs(tmp_path):
    directory = project(tmp_path)
    github = GitHubCodeRepository("1", "gh", {"owner": "o", "repository": "r"})
    git = GitCodeRepository("2", "g", {"url": "https://example.invalid/r.git"})
    none = gather_base(load_settings(directory), PARENT, {})
    with_github = gather_base(load_settings(directory), PARENT, {"gh": ("github", github)})
    with_git = gather_base(load_settings(directory), PARENT, {"g": ("git", git)})
    assert len({none.checksum, with_github.checksum, with_git.checksum}) == 3
    assert "'builder-cli[github]'" in with_github.dockerfile
    assert "apt-get install" not in with_github.dockerfile
    assert "apt-get install" in with_git.dockerfile and " git" in with_git.dockerfile
    assert "builder-cli[" not in with_git.dockerfile and "builder-cli[" not in none.dockerfile


def test_custom_class_source_and_requirements_count(tmp_path, monkeypatch):
    module_dir = tmp_path / "mods"
    module_dir.mkdir()
    source = textwrap.dedent("""
        from builder.repositories.base import BaseCodeRepository

        class MyRepo(BaseCodeRepository):
            requirements = ["requests>=2"]

            def login(self): pass
            def download_files(self, commit, directory, repo_sub_directory): pass
            def get_local_context(self, path): return None
    """)
    (module_dir / "my_custom_repo.py").write_text(source)
    monkeypatch.syspath_prepend(str(module_dir))
    import importlib

    module = importlib.import_module("my_custom_repo")
    try:
        repo = module.MyRepo("1", "mine", {})
        needs = runtime_needs({"mine": ("custom", repo)})
        assert needs.pip == ("requests>=2",)
        assert [m.name for m in needs.custom_modules] == ["my_custom_repo"]
        directory = project(tmp_path)
        first = gather_base(load_settings(directory), PARENT, {"mine": ("custom", repo)})
        assert "/opt/builder/custom" in first.dockerfile and "'requests>=2'" in first.dockerfile
        (module_dir / "my_custom_repo.py").write_text(source + "\n# changed\n")
        assert gather_base(load_settings(directory), PARENT,
                           {"mine": ("custom", repo)}).checksum != first.checksum
    finally:
        sys.modules.pop("my_custom_repo", None)


# ---- templates -----------------------------------------------------------------------------

def test_base_dockerfile_part_is_the_parent_and_apt_packages():
    text = render_base("sha256:" + "a" * 64, ("git", "curl"))
    instructions = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert instructions[0] == "FROM sha256:" + "a" * 64
    assert "curl git" in text  # sorted
    assert "RUN --mount" not in text and "COPY" not in text
    assert "apt-get" not in render_base("sha256:" + "a" * 64, ())


@pytest.mark.parametrize("name", ["uv", "pip"])
def test_install_steps_make_builder_then_install_requirements_and_set_the_entrypoint(name):
    steps = render_install(get_installer(name), has_requirements=True,
                           builder_requirements=("builder-cli[github]",), custom_module=False,
                           environment={"X": "a$b c"}, code_dir="/srv/app")
    assert " /opt/builder\n" in steps.runtime
    assert "--no-index --find-links /opt/builder-install/wheelhouse 'builder-cli[github]'" \
        in steps.runtime
    # builder's environment needs nothing of the project, nor a download cache
    assert "/srv/app" not in steps.runtime and f"/var/cache/builder-install/{name} " \
        not in steps.runtime
    assert "-r /opt/builder-install/requirements/requirements.txt" in steps.requirements
    assert "/var/cache/builder-install/" + name in steps.requirements
    report = "\npython3 -I /opt/builder-install/site_packages.py report /opt/builder-install"
    assert steps.requirements.rstrip().endswith(
        "mkdir -p /srv/app" + (report + " || true" if name == "uv" else ""))
    for script in (steps.runtime, steps.requirements):
        assert "rm -rf /opt/builder-install" in script and "trap finish EXIT" in script
    # uv can update the previous base's requirements (builder.images.increment); pip cannot
    assert ("site_packages.py plan" in steps.update) == (name == "uv")
    assert steps.update == "" or "trap finish EXIT" in steps.update
    assert steps.changes == ('ENV X="a\\$b c"', 'ENV BUILDER_CODE_DIR="/srv/app"',
                             "WORKDIR /srv/app",
                             'ENTRYPOINT ["/opt/builder/bin/builder", "entrypoint", "--"]',
                             "CMD []")


def test_builder_environment_step_does_not_depend_on_the_project():
    def steps(**changes: object):
        options: dict[str, object] = {
            "has_requirements": True, "builder_requirements": ("builder-cli",),
            "custom_module": False, "environment": {}, "code_dir": "/app/code", **changes}
        return render_install(get_installer("uv"), **options)  # type: ignore[arg-type]

    plain = steps()
    for other in (steps(has_requirements=False), steps(environment={"A": "1"}),
                  steps(code_dir="/srv")):
        assert other.runtime == plain.runtime and other.text() != plain.text()
    assert steps(builder_requirements=("builder-cli[gitlab]",)).runtime != plain.runtime
    assert "requirements.txt" not in steps(has_requirements=False).requirements


def test_environment_line_breaks_are_refused():
    with pytest.raises(UsageError, match="line break"):
        env_quote("a\nb")


def test_target_platform_tags():
    tags = TARGET.platform_tags()
    assert tags[0] == "manylinux_2_36_x86_64"
    assert "manylinux2014_x86_64" in tags and "manylinux_2_17_x86_64" in tags
    options = TARGET.pip_options()
    assert options[:6] == ["--python-version", "3.11", "--implementation", "cp", "--abi", "cp311"]
    musl = Target("cpython", "3.12.1", "aarch64", "linux", "musl", "1.2")
    assert musl.platform_tags()[:3] == ["musllinux_1_2_aarch64", "musllinux_1_1_aarch64",
                                        "musllinux_1_0_aarch64"]


def test_builder_wheel_is_deterministic(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = wheelhouse.build_wheel(tmp_path / "a")
    second = wheelhouse.build_wheel(tmp_path / "b")
    assert first.read_bytes() == second.read_bytes()
    import zipfile

    with zipfile.ZipFile(first) as archive:
        names = archive.namelist()
    assert "builder/_templates/base.Dockerfile.j2" in names
    assert "builder/images/checksum.py" in names
    assert any(n.endswith(".dist-info/METADATA") for n in names)
    assert any(n.endswith(".dist-info/entry_points.txt") for n in names)


def test_old_wheelhouses_are_pruned(tmp_path):
    dirs = []
    for index in range(9):
        directory = tmp_path / f"wh{index}"
        directory.mkdir()
        (directory / ".complete").write_text("x")
        age = 10_000 - index * 100  # wh8 is the newest
        os.utime(directory / ".complete", (time.time() - age, time.time() - age))
        dirs.append(directory)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / ".complete").write_text("x")
    (tmp_path / "partial").mkdir()  # no marker: another process may be filling it
    wheelhouse.prune(tmp_path, keep=fresh, newest=4)
    left = sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("."))
    assert left == ["fresh", "partial", "wh6", "wh7", "wh8"]
