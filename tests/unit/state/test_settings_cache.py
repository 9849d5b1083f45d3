"""Remembered builder.yaml files: an entry answers only the exact text it was made from."""

from __future__ import annotations

import json
import os

import pytest

from builder.errors import SettingsError
from builder.state import settings_cache
from builder.state.settings import load_settings


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("BUILDER_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def project(tmp_path, text, name="p"):
    directory = tmp_path / name
    directory.mkdir(exist_ok=True)
    (directory / "builder.yaml").write_text(text)
    return directory


def entries(home):
    directory = home / "cache" / "settings"
    return sorted(directory.iterdir()) if directory.exists() else []


def test_valid_settings_are_remembered_and_answer_the_same(tmp_path, home):
    text = "name: demo\ncommand: python main.py --port 8000\nenvironment: {A: '1'}\n"
    first = load_settings(project(tmp_path, text))
    [entry] = entries(home)
    assert entry.stat().st_mode & 0o777 == 0o600
    assert json.loads(entry.read_text())["text"] == text
    assert settings_cache.recall(text) == {
        "name": "demo",
        "command": "python main.py --port 8000",
        "environment": {"A": "1"},
    }
    assert load_settings(project(tmp_path, text)) == first


def test_a_changed_file_is_parsed_again(tmp_path, home):
    directory = project(tmp_path, "name: one\n")
    assert load_settings(directory).name == "one"
    (directory / "builder.yaml").write_text("name: two\n")
    assert load_settings(directory).name == "two"
    assert settings_cache.recall("name: one\n") == {"name": "one"}
    assert settings_cache.recall("name: two\n") == {"name": "two"}


def test_an_entry_for_other_text_in_the_same_slot_is_a_miss(tmp_path, home):
    load_settings(project(tmp_path, "name: demo\n"))
    [entry] = entries(home)
    entry.write_text(json.dumps({"text": "name: other\n", "data": {"name": "other"}}))
    assert settings_cache.recall("name: demo\n") is None
    assert load_settings(project(tmp_path, "name: demo\n")).name == "demo"


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"text": "name: demo\\n"}'])
def test_a_damaged_entry_is_a_miss_and_is_replaced(tmp_path, home, content):
    load_settings(project(tmp_path, "name: demo\n"))
    [entry] = entries(home)
    entry.write_text(content)
    assert settings_cache.recall("name: demo\n") is None
    assert load_settings(project(tmp_path, "name: demo\n")).name == "demo"
    assert settings_cache.recall("name: demo\n") == {"name": "demo"}


@pytest.mark.parametrize(
    "text",
    [
        "name: demo\nunknown: 1\n",  # invalid: an unknown key
        "name: 5\n",  # invalid: not a string
        "name: [demo\n",  # not YAML
    ],
)
def test_invalid_settings_write_nothing(tmp_path, home, text):
    with pytest.raises(SettingsError):
        load_settings(project(tmp_path, text))
    assert entries(home) == []


def test_values_json_cannot_keep_are_not_remembered():
    settings_cache.remember("a", {"name": "demo", 1: "int key"})
    settings_cache.remember("b", {"name": "demo", "when": __import__("datetime").date(2026, 1, 1)})
    settings_cache.remember("c", {"name": "demo", "x": float("nan")})
    assert [settings_cache.recall(text) for text in "abc"] == [None, None, None]


def test_the_oldest_entries_go_beyond_the_limit(home, monkeypatch):
    monkeypatch.setattr(settings_cache, "MAX_ENTRIES", 3)
    for index in range(5):
        settings_cache.remember(f"name: p{index}\n", {"name": f"p{index}"})
        entry = settings_cache._entry(f"name: p{index}\n")
        os.utime(entry, (1_000_000 + index, 1_000_000 + index))
    settings_cache.remember("name: last\n", {"name": "last"})
    kept = [settings_cache.recall(f"name: p{index}\n") for index in range(5)]
    assert kept[:3] == [None, None, None]
    assert len(entries(home)) == 3
    assert settings_cache.recall("name: last\n") == {"name": "last"}


def test_an_unwritable_cache_is_only_a_miss(tmp_path, home):
    home.mkdir()
    (home / "cache").write_text("a file where the cache directory would be")
    assert load_settings(project(tmp_path, "name: demo\n")).name == "demo"
    assert settings_cache.recall("name: demo\n") is None
