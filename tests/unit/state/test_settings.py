"""builder.yaml parsing: typed values, and one-line errors that name the file and key."""

from __future__ import annotations

import pytest

from builder.errors import SettingsError
from builder.state.settings import load_settings


def write(tmp_path, text):
    (tmp_path / "builder.yaml").write_text(text)
    return tmp_path


def test_minimal_file_gets_defaults(tmp_path):
    settings = load_settings(write(tmp_path, "name: demo\n"))
    assert settings.name == "demo"
    assert settings.parent_image == "python:3.11-slim"
    assert settings.code_dir == "/app/code"
    assert settings.requirements == ()
    assert settings.registry is None


def test_requirements_txt_is_the_default_when_present(tmp_path):
    (tmp_path / "requirements.txt").write_text("six\n")
    assert load_settings(write(tmp_path, "name: demo\n")).requirements == ("requirements.txt",)


def test_full_file(tmp_path):
    (tmp_path / "req").mkdir()
    (tmp_path / "req" / "base.txt").write_text("six\n")
    settings = load_settings(
        write(
            tmp_path,
            """
name: team/app
parent_image: python:3.11-slim
requirements: [req/base.txt]
apt_packages: [git, libpq-dev]
environment: {A: x, B: 1, C: true}
registry: localhost:5000/
code_dir: /srv/code/
command: python main.py --flag
verify_download: true
""",
        )
    )
    assert settings.requirements == ("req/base.txt",)
    assert settings.environment == {"A": "x", "B": "1", "C": "true"}
    assert settings.registry == "localhost:5000"
    assert settings.code_dir == "/srv/code"
    assert settings.command == ("python", "main.py", "--flag")
    assert settings.verify_download is True


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("parent_image: x\n", "key 'name': is required"),
        ("name: Demo\n", "key 'name': 'Demo' is not a valid image name"),
        ("name: demo\nbogus: 1\n", "unknown key 'bogus'"),
        ("name: demo\nrequirements: requirements.txt\n", "key 'requirements': expected a list"),
        (
            "name: demo\nrequirements: [missing.txt]\n",
            "key 'requirements': file 'missing.txt' not found",
        ),
        ("name: demo\nrequirements: [../x.txt]\n", "must be a path inside the project"),
        ("name: demo\napt_packages: [1]\n", "key 'apt_packages': expected a list of strings"),
        ("name: demo\napt_packages: ['rm -rf']\n", "not a Debian package name"),
        ("name: demo\nenvironment: [A]\n", "key 'environment': expected a mapping"),
        ("name: demo\nenvironment: {A: [1]}\n", "value of 'A' must be a string"),
        ("name: demo\nenvironment: {BUILDER_COMMIT: x}\n", "reserved"),
        ("name: demo\nregistry: https://x\n", "key 'registry'"),
        ("name: demo\ncode_dir: relative\n", "key 'code_dir': 'relative' must be an absolute path"),
        ("name: demo\ncommand: {a: b}\n", "key 'command': expected a list of strings"),
        (
            "name: demo\nverify_download: yes please\n",
            "key 'verify_download': expected true or false",
        ),
        ("name: [demo\n", "invalid YAML (line"),
        ("- a\n- b\n", "expected a mapping of keys"),
    ],
)
def test_bad_settings_name_the_file_and_key(tmp_path, text, fragment):
    write(tmp_path, text)
    with pytest.raises(SettingsError) as caught:
        load_settings(tmp_path)
    message = str(caught.value)
    assert fragment in message
    assert str(tmp_path / "builder.yaml") in message
    assert "\n" not in message
    assert caught.value.exit_code == 2


def test_missing_file(tmp_path):
    with pytest.raises(SettingsError, match=r"builder\.yaml: not found"):
        load_settings(tmp_path)
