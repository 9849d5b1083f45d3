"""Where the dependencies come from: detection order, builder.yaml's overrides, errors."""

from __future__ import annotations

import pytest

from builder.errors import UsageError
from builder.project.sources import detect_source
from builder.state.settings import load_settings

PEP621 = '[project]\nname = "app"\nversion = "1"\ndependencies = ["six"]\n'


def project(tmp_path, files: dict[str, str], yaml: str = ""):
    (tmp_path / "builder.yaml").write_text("name: demo\n" + yaml)
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return load_settings(tmp_path)


@pytest.mark.parametrize(("files", "kind"), [
    ({"uv.lock": "", "poetry.lock": "", "requirements.txt": "six\n", "pyproject.toml": PEP621},
     "uv.lock"),
    ({"poetry.lock": "", "requirements.txt": "six\n", "pyproject.toml": PEP621}, "poetry.lock"),
    ({"requirements.txt": "six\n", "pyproject.toml": PEP621}, "requirements"),
    ({"pyproject.toml": PEP621}, "pyproject.toml"),
    ({"pyproject.toml": '[tool.poetry.dependencies]\npython = "^3.10"\nsix = "*"\n'},
     "pyproject.toml"),
    ({"pyproject.toml": '[project]\nname = "app"\nversion = "1"\n'}, "none"),
    ({"pyproject.toml": "[tool.ruff]\nline-length = 100\n"}, "none"),
    ({}, "none"),
])
def test_detection_takes_the_first_source_present(tmp_path, files, kind):
    source = detect_source(project(tmp_path, files))
    assert source.kind == kind and source.detected
    assert source.exact == (kind in ("uv.lock", "poetry.lock"))


def test_requirements_in_builder_yaml_win_over_a_lock(tmp_path):
    settings = project(tmp_path, {"uv.lock": "", "pyproject.toml": PEP621, "dev.txt": "six\n"},
                       "requirements: [dev.txt]\n")
    source = detect_source(settings)
    assert (source.kind, source.files, source.requirement_files) == (
        "requirements", ("dev.txt",), ("dev.txt",))


def test_builder_yaml_names_the_source_and_its_extras_and_groups(tmp_path):
    settings = project(tmp_path, {"uv.lock": "", "poetry.lock": "", "pyproject.toml": PEP621},
                       "dependencies: poetry.lock\nextras: [a]\ngroups: [lint]\n")
    source = detect_source(settings)
    assert (source.kind, source.extras, source.groups, source.detected) == (
        "poetry.lock", ("a",), ("lint",), False)
    assert source.to_json() == {"source": "poetry.lock", "files": ["pyproject.toml",
                                "poetry.lock"], "extras": ["a"], "groups": ["lint"],
                                "locked": True}
    assert source.describe() == "poetry.lock (extras: a; groups: lint; locked; set in builder.yaml)"


def test_none_installs_nothing_even_with_a_lock(tmp_path):
    settings = project(tmp_path, {"uv.lock": "", "pyproject.toml": PEP621}, "dependencies: none\n")
    assert detect_source(settings).kind == "none"


def test_setuptools_dynamic_dependencies_from_files_are_requirement_files(tmp_path):
    text = ('[project]\nname = "app"\nversion = "1"\ndynamic = ["dependencies"]\n'
            '[tool.setuptools.dynamic]\ndependencies = {file = ["deps/base.txt"]}\n')
    (tmp_path / "deps").mkdir()
    (tmp_path / "deps" / "base.txt").write_text("six\n")
    source = detect_source(project(tmp_path, {"pyproject.toml": text}))
    assert (source.kind, source.requirement_files) == ("pyproject.toml", ("deps/base.txt",))


@pytest.mark.parametrize(("files", "yaml", "message"), [
    ({"uv.lock": ""}, "", "uv.lock: there is no pyproject.toml beside it"),
    ({"pyproject.toml": PEP621}, "dependencies: uv.lock\n",
     "key 'dependencies': uv.lock, but uv.lock is not in"),
    ({"requirements.txt": "six\n"}, "extras: [a]\n", "key 'extras': the dependencies come from "
     "requirements"),
    ({}, "groups: [dev]\n", "key 'groups'"),
    ({"pyproject.toml": '[project]\nname = "a"\nversion = "1"\ndynamic = ["dependencies"]\n'},
     "", "key 'project.dynamic': the dependencies are dynamic"),
    ({"pyproject.toml": '[project]\nname = "a"\nversion = "1"\ndependencies = ["six"\n'}, "",
     "pyproject.toml: invalid TOML"),
])
def test_bad_input_is_one_line_naming_the_file_or_key(tmp_path, files, yaml, message):
    with pytest.raises(UsageError) as caught:
        detect_source(project(tmp_path, files, yaml))
    assert message in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(("yaml", "message"), [
    ("dependencies: pipenv\n", "key 'dependencies': 'pipenv' is not one of auto, uv.lock"),
    ("requirements: [r.txt]\ndependencies: uv.lock\n", "contradicts `requirements:`"),
    ("extras: fmt\n", "key 'extras': expected a list"),
    ("install_project: maybe\n", "key 'install_project': expected true or false"),
    ("code_dir: /app/my code\n", "key 'code_dir'"),
])
def test_builder_yaml_keys_are_checked(tmp_path, yaml, message):
    (tmp_path / "r.txt").write_text("six\n")
    (tmp_path / "builder.yaml").write_text("name: demo\n" + yaml)
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace("`", "`")):
        load_settings(tmp_path)
