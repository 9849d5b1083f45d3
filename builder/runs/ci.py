"""The CI context of a run: which pipeline job ran it, with a link back to it.

Only the named, non-secret variables below are read; tokens that CI systems also set
(`GITHUB_TOKEN`, `CI_JOB_TOKEN`, ...) are never looked at.

- GitHub Actions sets `GITHUB_ACTIONS=true`, `GITHUB_RUN_ID`, `GITHUB_RUN_ATTEMPT`,
  `GITHUB_SERVER_URL`, `GITHUB_REPOSITORY`, `GITHUB_WORKFLOW` and `GITHUB_JOB`; a run's page is
  `$GITHUB_SERVER_URL/$GITHUB_REPOSITORY/actions/runs/$GITHUB_RUN_ID`
  (https://docs.github.com/en/actions/reference/variables-reference).
- GitLab CI sets `GITLAB_CI=true`, `CI_PIPELINE_ID`, `CI_PIPELINE_URL`, `CI_JOB_ID`,
  `CI_JOB_URL`, `CI_JOB_NAME` and `CI_PROJECT_PATH`
  (https://docs.gitlab.com/ci/variables/predefined_variables).
"""

from __future__ import annotations

from collections.abc import Mapping

from builder.state.secrets import redact

GITHUB = {
    "run_id": "GITHUB_RUN_ID",
    "run_attempt": "GITHUB_RUN_ATTEMPT",
    "repository": "GITHUB_REPOSITORY",
    "workflow": "GITHUB_WORKFLOW",
    "job": "GITHUB_JOB",
}
GITLAB = {
    "pipeline_id": "CI_PIPELINE_ID",
    "pipeline_url": "CI_PIPELINE_URL",
    "job_id": "CI_JOB_ID",
    "job_url": "CI_JOB_URL",
    "job": "CI_JOB_NAME",
    "project": "CI_PROJECT_PATH",
}


def ci_context(environ: Mapping[str, str]) -> dict[str, str] | None:
    """`{"system": "github" | "gitlab", ids..., "url": ...}`, or None outside CI."""
    if environ.get("GITHUB_ACTIONS") == "true" and environ.get("GITHUB_RUN_ID"):
        context = _pick(environ, GITHUB)
        server = environ.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
        if context.get("repository"):
            context["url"] = f"{server}/{context['repository']}/actions/runs/{context['run_id']}"
        return {"system": "github", **context}
    if environ.get("GITLAB_CI") == "true" and (
        environ.get("CI_JOB_ID") or environ.get("CI_PIPELINE_ID")
    ):
        context = _pick(environ, GITLAB)
        url = context.get("job_url") or context.get("pipeline_url")
        if url:
            context["url"] = url
        return {"system": "gitlab", **context}
    return None


def _pick(environ: Mapping[str, str], names: Mapping[str, str]) -> dict[str, str]:
    return {key: redact(environ[name]) for key, name in names.items() if environ.get(name)}
