"""The pure parts of the run records: ages and the cap, the CI context, a record's reading."""

from __future__ import annotations

import pytest

from builder.errors import UsageError
from builder.images.names import split_ref
from builder.runs.ci import ci_context
from builder.runs.records import EMITTED, FINISHED, KILLED, RUNNING, RunRecord
from builder.runs.retention import DEFAULT_KEEP, KEEP_ENV, keep_limit, parse_age


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("15m", 900), ("12h", 43200), ("30d", 2592000), ("2w", 1209600)],
)
def test_ages(text, seconds):
    assert parse_age(text) == seconds


@pytest.mark.parametrize("text", ["", "30", "d", "-1d", "0s", "1.5h", "3y", "12 h x"])
def test_bad_ages_are_usage_errors_naming_the_option(text):
    with pytest.raises(UsageError, match="--older-than"):
        parse_age(text)


def test_the_cap_defaults_and_reads_its_variable():
    assert keep_limit({}) == DEFAULT_KEEP
    assert keep_limit({KEEP_ENV: "50"}) == 50
    for bad in ("0", "-3", "many"):
        with pytest.raises(UsageError, match=KEEP_ENV):
            keep_limit({KEEP_ENV: bad})


GITHUB = {
    "GITHUB_ACTIONS": "true", "GITHUB_RUN_ID": "1234", "GITHUB_RUN_ATTEMPT": "2",
    "GITHUB_SERVER_URL": "https://github.example", "GITHUB_REPOSITORY": "team/app",
    "GITHUB_WORKFLOW": "ci", "GITHUB_JOB": "test", "GITHUB_TOKEN": "ghs_secret0123456789",
}
GITLAB = {
    "GITLAB_CI": "true", "CI_PIPELINE_ID": "77", "CI_JOB_ID": "901",
    "CI_JOB_URL": "https://gitlab.example/team/app/-/jobs/901",
    "CI_PIPELINE_URL": "https://gitlab.example/team/app/-/pipelines/77",
    "CI_PROJECT_PATH": "team/app", "CI_JOB_NAME": "test", "CI_JOB_TOKEN": "glcbt-secret0123456",
}


def test_github_actions_context_links_the_run_and_holds_no_token():
    context = ci_context(GITHUB)
    assert context == {
        "system": "github", "run_id": "1234", "run_attempt": "2", "repository": "team/app",
        "workflow": "ci", "job": "test",
        "url": "https://github.example/team/app/actions/runs/1234",
    }
    assert "ghs_secret0123456789" not in repr(context)


def test_gitlab_ci_context_links_the_job_and_holds_no_token():
    context = ci_context(GITLAB)
    assert context is not None
    assert context["system"] == "gitlab" and context["pipeline_id"] == "77"
    assert context["job_id"] == "901" and context["url"] == GITLAB["CI_JOB_URL"]
    assert "glcbt-secret0123456" not in repr(context)


def test_no_ci_context_outside_ci():
    assert ci_context({"CI": "true", "HOME": "/root"}) is None
    assert ci_context({"GITHUB_ACTIONS": "true"}) is None


def record(**fields) -> RunRecord:
    return RunRecord(id="0123456789abcdef" * 2, kind="run", started_at=100.0,
                     project_path="/p", **fields)


def test_how_a_person_reads_the_outcome():
    assert record(status=RUNNING).result == "still running"
    assert record(status=KILLED).result == "killed"
    assert record(status=EMITTED, exit_code=0).result == "emitted"
    assert record(status=FINISHED, exit_code=7).result == "exit 7"
    assert record(status=FINISHED, exit_code=1, error="engine gone").result == "failed (1)"
    assert record(status=FINISHED, exit_code=0, ended_at=104.25).seconds == 4.25
    assert record().seconds is None


def test_the_pinned_image_is_the_repository_at_the_digest():
    digest = "sha256:" + "ab" * 32
    pushed = record(image="127.0.0.1:5000/app:code-0123", image_digest=digest)
    assert pushed.pinned_image == f"127.0.0.1:5000/app@{digest}"
    assert record(image="app:code-0123").pinned_image is None


def test_json_has_times_in_utc_and_the_short_id():
    data = record(status=FINISHED, exit_code=0, ended_at=101.5).to_json()
    assert data["started_at"] == "1970-01-01T00:01:40.000Z"
    assert data["ended_at"] == "1970-01-01T00:01:41.500Z"
    assert data["seconds"] == 1.5 and data["short_id"] == "0123456789ab"
    assert data["result"] == "exit 0"


def test_split_ref_takes_a_digest_as_the_tag_the_engine_pulls():
    digest = "sha256:" + "ab" * 32
    assert split_ref(f"127.0.0.1:5000/app@{digest}") == ("127.0.0.1:5000/app", digest)
    assert split_ref(f"127.0.0.1:5000/app:base-1@{digest}") == ("127.0.0.1:5000/app", digest)
    assert split_ref("127.0.0.1:5000/app:base-1") == ("127.0.0.1:5000/app", "base-1")
    assert split_ref("127.0.0.1:5000/app") == ("127.0.0.1:5000/app", "latest")
