"""Explaining a rebuild: the diff of two records of base inputs, and the record on disk."""

from __future__ import annotations

import json

from builder.images.changes import (
    RECORD_VERSION,
    WITHOUT_ENGINE,
    base_changes,
    describe_change,
    load_record,
    record_path,
    save_record,
)

BEFORE = {
    "requirements": ["six==1.16.0", "idna==3.7", "attrs==24.2.0"],
    "apt_packages": ["curl"],
    "environment": {"A": "1", "B": "2"},
    "runtime_needs": ["type:git"],
    "custom_sources": [],
    "parent_image": "python:3.11-slim",
    "parent_digest": "sha256:" + "a" * 64,
    "python_version": "3.11.2",
    "platform": "linux/x86_64 glibc 2.36",
    "installer": "uv",
    "template": "t1",
    "builder_version": "0.1.0+abc",
    "code_dir": "/app/code",
}


def test_same_inputs_no_changes():
    assert base_changes(BEFORE, dict(BEFORE)) == []


def test_one_requirement_line_is_named_alone():
    after = {**BEFORE, "requirements": ["six==1.16.0", "idna==3.6", "attrs==24.2.0"]}
    assert base_changes(BEFORE, after) == [
        {"input": "requirements", "added": ["idna==3.6"], "removed": ["idna==3.7"]}]


def test_reordered_requirements_are_said_so():
    after = {**BEFORE, "requirements": list(reversed(BEFORE["requirements"]))}
    assert base_changes(BEFORE, after) == [
        {"input": "requirements", "added": [], "removed": [], "reordered": True}]


def test_every_kind_of_input_in_a_fixed_order():
    after = {**BEFORE, "apt_packages": ["git", "curl"], "environment": {"B": "3", "A": "1"},
             "parent_digest": "sha256:" + "b" * 64, "template": "t2",
             "builder_version": "0.2.0", "installer": "pip"}
    changes = base_changes(BEFORE, after)
    assert [c["input"] for c in changes] == [
        "apt_packages", "environment", "parent_digest", "installer", "template",
        "builder_version"]
    assert changes[0] == {"input": "apt_packages", "added": ["git"], "removed": []}
    assert changes[1] == {"input": "environment", "added": ["B=3"], "removed": ["B=2"]}
    assert describe_change(changes[2]) == \
        "parent digest: sha256:aaaaaaaaaaaa -> sha256:bbbbbbbbbbbb"
    assert describe_change(changes[1]) == "environment: + B=3, - B=2"


def test_inputs_missing_on_one_side_are_not_compared():
    known = {k: v for k, v in BEFORE.items() if k in WITHOUT_ENGINE}
    assert "parent_digest" not in known and "requirements" in known
    assert base_changes(BEFORE, {**known, "installer": "pip"}) == [
        {"input": "installer", "before": "uv", "after": "pip"}]


def test_record_round_trip_per_project_directory(tmp_path):
    home = tmp_path / "home"
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    assert load_record(home, one) is None
    save_record(home, one, {"checksum": "c1", **BEFORE})
    loaded = load_record(home, one)
    assert loaded is not None and loaded["checksum"] == "c1"
    assert loaded["requirements"] == BEFORE["requirements"]
    assert load_record(home, two) is None
    assert record_path(home, one) != record_path(home, two)
    assert [p.name for p in record_path(home, one).parent.iterdir()] == [
        record_path(home, one).name]  # no temporary file left beside it


def test_unreadable_or_other_version_records_are_ignored(tmp_path):
    home = tmp_path / "home"
    path = record_path(home, tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert load_record(home, tmp_path) is None
    path.write_text(json.dumps({"version": RECORD_VERSION + 1, "checksum": "x"}))
    assert load_record(home, tmp_path) is None


def test_records_and_messages_hide_credentials_of_index_urls(tmp_path):
    from builder.images.inputs import known_inputs, runtime_needs
    from builder.images.requirements import collect_requirements
    from builder.state.settings import load_settings

    (tmp_path / "builder.yaml").write_text("name: demo\n")
    (tmp_path / "requirements.txt").write_text(
        "--extra-index-url https://user:s3cret-t0ken@pkgs.example.com/simple\n"
        "pkg @ git+https://ghp_abc123@github.com/acme/pkg@main\nsix==1.16.0\n")
    settings = load_settings(tmp_path)
    requirements = collect_requirements(settings)
    assert "s3cret-t0ken" in requirements.text().decode()  # installed as written
    record = known_inputs(settings, requirements, runtime_needs({}))
    assert record["requirements"] == [
        "--extra-index-url https://***@pkgs.example.com/simple",
        "pkg @ git+https://***@github.com/acme/pkg@main", "six==1.16.0"]
