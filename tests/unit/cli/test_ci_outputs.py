"""CI outputs: GitHub step outputs and summary, GitLab dotenv; plain progress in CI."""

from __future__ import annotations

import json
import sys

import pytest

from builder.cli import ci_outputs
from builder.errors import BuilderError, UsageError
from builder.images import progress
from builder.state import secrets
from tests.cisim import parse_dotenv, parse_github_output

SPEC = {"type": "github", "name": "app", "config": {"owner": "team", "repository": "app"}}
TOKEN = "ghp_secret0123456789abcdef"


def result(mode: str = "reuse", **extra):
    base = {
        "mode": mode,
        "reasons": [] if mode == "reuse" else ["1 file differs from commit 0123456789ab: a.py"],
        "code_repository": "app",
        "commit": "0123456789abcdef0123456789abcdef01234567",
        "subdirectory": "services/api",
        "dirty_files": [] if mode == "reuse" else ["a.py"],
        "unpushed": False,
        "checksum": "c" * 64,
        "base_image": "127.0.0.1:5000/demo:base-cccccccccccccccc",
        "image": "127.0.0.1:5000/demo:base-cccccccccccccccc"
        if mode == "reuse"
        else "127.0.0.1:5000/demo:code-dddddddddddddddd",
        "built": [],
        "pushed": ["127.0.0.1:5000/demo:base-cccccccccccccccc"],
        "seconds": 1.25,
    }
    return {**base, **extra}


def test_reuse_outputs_carry_the_container_contract():
    values = ci_outputs.outputs(result(), SPEC)
    assert list(values) == list(ci_outputs.OUTPUT_KEYS)
    assert values["mode"] == "reuse"
    assert values["image"] == values["base_image"] == "127.0.0.1:5000/demo:base-cccccccccccccccc"
    assert values["commit"] == values["builder_commit"] == result()["commit"]
    assert values["checksum"] == "c" * 64
    assert values["subdirectory"] == "services/api"
    assert json.loads(values["builder_code_repository"]) == SPEC
    assert "\n" not in values["builder_code_repository"]


def test_bake_outputs_leave_the_contract_empty():
    values = ci_outputs.outputs(result("bake"), None)
    assert values["mode"] == "bake" and values["image"].endswith(":code-dddddddddddddddd")
    assert values["commit"] == result()["commit"]
    assert values["builder_commit"] == "" and values["builder_code_repository"] == ""


def test_outside_git_every_value_is_a_string():
    values = ci_outputs.outputs(result("bake", commit=None, code_repository=None), None)
    assert values["commit"] == "" and values["code_repository"] == ""


def test_github_output_round_trips_including_line_breaks():
    values = {"mode": "reuse", "odd": "line one\nline two", "empty": ""}
    text = ci_outputs.github_output_lines(values)
    assert text.startswith("mode=reuse\nodd<<ghadelimiter_")
    assert parse_github_output(text) == values


def test_dotenv_is_key_value_lines_and_refuses_line_breaks():
    values = ci_outputs.outputs(result(), SPEC)
    assert parse_dotenv(ci_outputs.dotenv_lines(values)) == values
    with pytest.raises(UsageError, match="line break"):
        ci_outputs.dotenv_lines({"x": "a\nb"})


def test_summary_is_short_markdown_with_the_reasons():
    text = ci_outputs.summary_markdown(result("bake", reasons=["a | b", "second\nline"]))
    lines = text.splitlines()
    assert lines[0] == "### builder: bake `127.0.0.1:5000/demo:code-dddddddddddddddd`"
    assert "| mode | bake: the code is in the image |" in lines
    assert "| pushed | `127.0.0.1:5000/demo:base-cccccccccccccccc` |" in lines
    assert "| built | nothing |" in lines
    assert "- a \\| b" in lines and "- second line" in lines
    assert len(lines) < 20


def test_publish_appends_to_the_github_files_and_writes_the_dotenv(tmp_path):
    output, summary, dotenv = tmp_path / "out", tmp_path / "summary.md", tmp_path / "b.env"
    output.write_text("earlier=step\n")
    summary.write_text("# earlier\n")
    env = {"GITHUB_OUTPUT": str(output), "GITHUB_STEP_SUMMARY": str(summary)}
    written = ci_outputs.publish(result(), SPEC, dotenv=dotenv, environ=env)
    assert written == ["$GITHUB_OUTPUT", "$GITHUB_STEP_SUMMARY", str(dotenv)]
    parsed = parse_github_output(output.read_text())
    assert parsed["earlier"] == "step" and parsed["mode"] == "reuse"
    assert summary.read_text().startswith("# earlier\n### builder: reuse")
    assert parse_dotenv(dotenv.read_text()) == ci_outputs.outputs(result(), SPEC)


def test_publish_writes_nothing_outside_ci(tmp_path):
    assert ci_outputs.publish(result(), SPEC, environ={}) == []
    assert list(tmp_path.iterdir()) == []


def test_no_token_reaches_any_file(tmp_path):
    secrets.remember(TOKEN)
    reason = f"cannot reach remote 'origin' (https://x-access-token:{TOKEN}@github.com/a/b)"
    env = {"GITHUB_OUTPUT": str(tmp_path / "o"), "GITHUB_STEP_SUMMARY": str(tmp_path / "s")}
    ci_outputs.publish(result("bake", reasons=[reason], code_repository=TOKEN), None,
                       dotenv=tmp_path / "d.env", environ=env)
    for path in tmp_path.iterdir():
        text = path.read_text()
        assert TOKEN not in text, path
    assert "***" in (tmp_path / "s").read_text()


def test_unwritable_destinations_are_clear_errors(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(UsageError, match=r"^--dotenv .*file/b.env: cannot write it"):
        ci_outputs.publish(result(), SPEC, dotenv=tmp_path / "file" / "b.env", environ={})
    env = {"GITHUB_OUTPUT": str(tmp_path / "missing" / "out")}
    with pytest.raises(BuilderError, match=r"^\$GITHUB_OUTPUT .*: cannot append to it"):
        ci_outputs.publish(result(), SPEC, environ=env)


def test_redaction_covers_the_actions_extraheader():
    basic = "eC1hY2Nlc3MtdG9rZW46Z2hzX3NlY3JldA=="
    for line in (
        f"http.https://github.com/.extraheader=AUTHORIZATION: basic {basic}",
        f"http.https://github.com/.extraheader AUTHORIZATION: basic {basic}",
        f"\textraheader = AUTHORIZATION: basic {basic}",
    ):
        assert basic not in secrets.redact(line), line


@pytest.mark.parametrize(
    ("tty", "env", "live"),
    [
        (False, {}, False),
        (True, {}, True),
        (True, {"CI": "true"}, False),
        (True, {"CI": "false"}, True),
        (True, {"TERM": "dumb"}, False),
    ],
)
def test_progress_is_plain_lines_unless_a_person_watches(monkeypatch, tty, env, live):
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: tty)
    assert progress.live_terminal() is live
    chosen = progress.default_progress()
    assert isinstance(chosen, progress.RichProgress if live else progress.PlainProgress)
