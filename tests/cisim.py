"""CI checkouts as GitHub Actions and GitLab CI make them, against the loopback servers.

- `actions_checkout`: what `actions/checkout@v4` runs: `git init`, an https-style origin
  without credentials, the token as `http.<server>/.extraheader` = `AUTHORIZATION: basic
  base64(x-access-token:TOKEN)` in `.git/config`, a depth-1 fetch of one commit (or of a ref
  such as `refs/pull/1/merge`), and a detached checkout.
- `gitlab_checkout`: what the GitLab runner runs: origin
  `http://gitlab-ci-token:TOKEN@host/group/project.git`, a fetch of the pipeline's commit and
  of the branch at `GIT_DEPTH` (20 by default), and a detached checkout.
- `github_env` / `gitlab_env`: the predefined variables those jobs see.
"""

from __future__ import annotations

import base64
from pathlib import Path

from tests.gitworld import git
from tests.infra.httpbase import LoopbackServer


def actions_checkout(
    server: LoopbackServer, repo: str, dest: Path, *, sha: str | None = None,
    ref: str | None = None, depth: int = 1, token: str | None = None,
) -> str:
    """Check out `sha` (or the commit `ref` names) like actions/checkout; return HEAD."""
    basic = base64.b64encode(f"x-access-token:{token or server.token}".encode()).decode()
    git(dest.parent, "init", "-q", str(dest))
    git(dest, "remote", "add", "origin", f"{server.url}/{repo}.git")
    git(dest, "config", "--local", "gc.auto", "0")
    git(dest, "config", "--local", f"http.{server.url}/.extraheader",
        f"AUTHORIZATION: basic {basic}")
    if ref is not None:
        target = f"refs/remotes/{ref.removeprefix('refs/')}"
        spec = f"+{ref}:{target}"
    else:
        assert sha is not None
        target = sha
        spec = f"+{sha}:refs/remotes/origin/main"
    git(dest, "-c", "protocol.version=2", "fetch", "--no-tags", "--prune", "-q",
        "--no-recurse-submodules", f"--depth={depth}", "origin", spec)
    git(dest, "checkout", "-q", "--force", "--detach", target)
    return git(dest, "rev-parse", "HEAD")


def gitlab_checkout(
    server: LoopbackServer, repo: str, dest: Path, sha: str, *, branch: str = "main",
    depth: int = 20, token: str | None = None, extra_ref: str | None = None,
) -> str:
    """Check out `sha` like the GitLab runner (credentials in the origin URL); return HEAD."""
    host = server.url.removeprefix("http://")
    origin = f"http://gitlab-ci-token:{token or server.token}@{host}/{repo}.git"
    git(dest.parent, "init", "-q", str(dest))
    git(dest, "remote", "add", "origin", origin)
    specs = [f"+{sha}:refs/pipelines/1", f"+refs/heads/{branch}:refs/remotes/origin/{branch}"]
    if extra_ref:
        specs = [f"+{extra_ref}:refs/pipelines/1"]
    git(dest, "fetch", "-q", "--prune", "--no-tags", f"--depth={depth}", "origin", *specs)
    git(dest, "checkout", "-q", "-f", "--detach", sha)
    return git(dest, "rev-parse", "HEAD")


def github_env(server: LoopbackServer, repo: str, sha: str, work: Path,
               **extra: str) -> dict[str, str]:
    work.mkdir(parents=True, exist_ok=True)
    return {
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        "GITHUB_SHA": sha,
        "GITHUB_REF": "refs/heads/main",
        "GITHUB_REF_NAME": "main",
        "GITHUB_REPOSITORY": repo,
        "GITHUB_REPOSITORY_OWNER": repo.split("/")[0],
        "GITHUB_SERVER_URL": server.url,
        "GITHUB_API_URL": server.url,
        "GITHUB_TOKEN": server.token,
        "GITHUB_OUTPUT": str(work / "github_output"),
        "GITHUB_STEP_SUMMARY": str(work / "step_summary.md"),
        "GITHUB_ENV": str(work / "github_env"),
        "RUNNER_TEMP": str(work),
        **extra,
    }


def gitlab_env(server: LoopbackServer, repo: str, sha: str, project_dir: Path,
               **extra: str) -> dict[str, str]:
    namespace, _, name = repo.rpartition("/")
    return {
        "CI": "true",
        "GITLAB_CI": "true",
        "CI_COMMIT_SHA": sha,
        "CI_COMMIT_BRANCH": "main",
        "CI_COMMIT_REF_NAME": "main",
        "CI_DEFAULT_BRANCH": "main",
        "CI_JOB_TOKEN": server.token,
        "CI_SERVER_URL": server.url,
        "CI_PROJECT_PATH": repo,
        "CI_PROJECT_NAMESPACE": namespace,
        "CI_PROJECT_NAME": name,
        "CI_PROJECT_DIR": str(project_dir),
        "GITLAB_TOKEN": server.token,
        **extra,
    }


def parse_github_output(text: str) -> dict[str, str]:
    """Read `$GITHUB_OUTPUT` as the runner does: `key=value`, or `key<<DELIM` ... `DELIM`."""
    values: dict[str, str] = {}
    lines = text.split("\n")
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if not line:
            continue
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            key, delimiter = line.split("<<", 1)
            end = lines.index(delimiter, index)
            values[key] = "\n".join(lines[index:end])
            index = end + 1
        else:
            key, _, value = line.partition("=")
            values[key] = value
    return values


def parse_dotenv(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line)
