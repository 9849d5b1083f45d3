"""The project read from pyproject.toml: name, version, entry points, import roots, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.errors import UsageError
from builder.project.metadata import describe


def tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


HATCH = '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n'
SETUPTOOLS = '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'


@pytest.mark.parametrize(("files", "roots"), [
    # src layout found by the fallback (hatchling's own discovery)
    ({"pyproject.toml": '[project]\nname = "My-App"\nversion = "1"\n' + HATCH,
      "src/my_app/__init__.py": ""}, ["src"]),
    # flat layout
    ({"pyproject.toml": '[project]\nname = "my-app"\nversion = "1"\n' + SETUPTOOLS,
      "my_app/__init__.py": "", "src/notes.txt": ""}, [""]),
    # hatch packages, a dist name unlike the package's
    ({"pyproject.toml": '[project]\nname = "dist"\nversion = "1"\n' + HATCH
      + '[tool.hatch.build.targets.wheel]\npackages = ["lib/pkg"]\n', "lib/pkg/__init__.py": ""},
     ["lib"]),
    ({"pyproject.toml": '[project]\nname = "dist"\nversion = "1"\n' + HATCH
      + '[tool.hatch.build.targets.wheel.sources]\n"src" = ""\n'}, ["src"]),
    # setuptools package-dir and find.where
    ({"pyproject.toml": '[project]\nname = "a"\nversion = "1"\n' + SETUPTOOLS
      + '[tool.setuptools]\npackage-dir = {"" = "code"}\n'}, ["code"]),
    ({"pyproject.toml": '[project]\nname = "a"\nversion = "1"\n' + SETUPTOOLS
      + '[tool.setuptools.packages.find]\nwhere = ["one", "two"]\n'}, ["one", "two"]),
    ({"pyproject.toml": '[project]\nname = "a"\nversion = "1"\n' + SETUPTOOLS
      + '[tool.setuptools]\npackages = ["src"]\n', "src/__init__.py": ""}, [""]),
    # poetry packages
    ({"pyproject.toml": '[tool.poetry]\nname = "p"\nversion = "1"\npackages = [{include = "x", '
      'from = "src"}, {include = "y"}]\n[build-system]\n'
      'build-backend = "poetry.core.masonry.api"\n'}, ["src", ""]),
    # flit: src/ when it holds the module
    ({"pyproject.toml": '[project]\nname = "flatmod"\nversion = "1"\n[build-system]\n'
      'build-backend = "flit_core.buildapi"\n', "src/flatmod.py": ""}, ["src"]),
])
def test_import_roots_follow_the_backend(tmp_path, files, roots):
    info = describe(tree(tmp_path, files))
    assert info is not None and info["roots"] == roots


@pytest.mark.parametrize(("files", "version"), [
    ({"pyproject.toml": '[project]\nname = "a"\nversion = "1.2"\n'}, "1.2"),
    ({"pyproject.toml": '[project]\nname = "a"\ndynamic = ["version"]\n' + HATCH
      + '[tool.hatch.version]\npath = "src/a/__about__.py"\n',
      "src/a/__about__.py": '__version__ = "2.0.1"\n', "src/a/__init__.py": ""}, "2.0.1"),
    ({"pyproject.toml": '[project]\nname = "ns-sub"\ndynamic = ["version"]\n' + SETUPTOOLS
      + '[tool.setuptools.dynamic]\nversion = {attr = "ns.sub.__version__"}\n'
      '[tool.setuptools.packages.find]\nwhere = ["src"]\n',
      "src/ns/sub/__init__.py": '__version__: str = "3.1.4"\n'}, "3.1.4"),
    ({"pyproject.toml": '[project]\nname = "a"\ndynamic = ["version"]\n' + SETUPTOOLS
      + '[tool.setuptools.dynamic]\nversion = {file = "VERSION"}\n', "VERSION": "5.0\n"}, "5.0"),
    ({"pyproject.toml": '[project]\nname = "flatmod"\ndynamic = ["version"]\n[build-system]\n'
      'build-backend = "flit_core.buildapi"\n', "flatmod.py": '__version__ = "0.7"\n'}, "0.7"),
    ({"pyproject.toml": '[project]\nname = "a"\ndynamic = ["version"]\n[build-system]\n'
      'build-backend = "hatchling.build"\n[tool.hatch.version]\nsource = "vcs"\n'}, "0+unknown"),
])
def test_version_static_or_read_from_a_file_without_importing(tmp_path, files, version):
    info = describe(tree(tmp_path, files))
    assert info is not None and info["version"] == version


def test_entry_points_and_requirements(tmp_path):
    info = describe(tree(tmp_path, {"pyproject.toml": (
        '[project]\nname = "a"\nversion = "1"\ndescription = "two\\n lines"\n'
        'dependencies = ["six"]\n[project.optional-dependencies]\n'
        'x = ["idna; os_name == \'posix\'"]\n'
        '[project.scripts]\nhello = "a.cli:main"\n[project.gui-scripts]\nwin = "a.gui:run"\n'
        '[project.entry-points."a.plugins"]\np = "a.plugin"\n')}))
    assert info is not None
    assert info["summary"] == "two lines"
    assert info["entry_points"] == {"console_scripts": {"hello": "a.cli:main"},
                                    "gui_scripts": {"win": "a.gui:run"},
                                    "a.plugins": {"p": "a.plugin"}}
    assert info["requires_dist"] == ["six", "idna; (os_name == 'posix') and extra == \"x\""]


def test_poetry_scripts_and_plugins(tmp_path):
    info = describe(tree(tmp_path, {"pyproject.toml": (
        '[tool.poetry]\nname = "p"\nversion = "3"\n[tool.poetry.scripts]\n'
        'one = "p:main"\ntwo = {reference = "p.cli:run", type = "console"}\n'
        'three = {reference = "bin/three.sh", type = "file"}\n'
        '[tool.poetry.plugins."p.hooks"]\nh = "p.hooks:h"\n')}))
    assert info is not None and info["entry_points"] == {
        "console_scripts": {"one": "p:main", "two": "p.cli:run"}, "p.hooks": {"h": "p.hooks:h"}}


@pytest.mark.parametrize("text", ["", "[tool.ruff]\nline-length = 100\n"])
def test_no_project_named_means_nothing_to_install(tmp_path, text):
    assert describe(tree(tmp_path, {"pyproject.toml": text})) is None
    assert describe(tmp_path / "missing") is None


@pytest.mark.parametrize(("text", "message"), [
    ('[project\nname = "a"\n', "pyproject.toml: invalid TOML: "),
    ('[project]\nname = "a"\nversion = "1"\n[build-system]\nbuild-backend = "maturin"\n',
     "key 'build-system.build-backend': 'maturin' builds compiled code"),
    ('[tool.poetry]\nname = "a"\nversion = "1"\npackages = [{include = "a", to = "b"}]\n',
     "key 'tool.poetry.packages': `to = 'b'` installs a package under another name"),
    ('[project]\nname = "a"\nversion = "1"\n' + SETUPTOOLS
     + '[tool.setuptools.package-dir]\na = "lib/a"\n', "key 'tool.setuptools.package-dir'"),
    ('[project]\nname = "a"\nversion = "1"\n[project.scripts]\nx = "a"\n',
     "key 'project.scripts.x': 'a' is not an entry point reference"),
    ('[project]\nname = "a"\nversion = "1"\n[tool.setuptools]\npackage-dir = {"" = "../x"}\n',
     "import root '../x' is outside the project directory"),
    ('[project]\nname = "-bad-"\n', "key 'project.name'"),
])
def test_what_cannot_be_installed_from_the_source_is_one_line_naming_the_file(tmp_path, text,
                                                                              message):
    with pytest.raises(UsageError) as caught:
        describe(tree(tmp_path, {"pyproject.toml": text}))
    assert str(caught.value).startswith(str(tmp_path / "pyproject.toml"))
    assert message in str(caught.value) and "\n" not in str(caught.value)
