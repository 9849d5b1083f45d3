"""The example pipelines in examples/, run step by step as the CI systems would run them.

Each example is parsed as YAML. Its shell steps (`run:` in GitHub Actions, `script:` in
GitLab CI) run with bash in a simulated runner: a checkout made the way the CI system makes
it (tests/cisim.py) from a loopback server, the job's predefined variables, the example's
own variables, and the outputs of earlier jobs. Each job is a separate runner with its own
BUILDER_HOME and DOCKER_CONFIG, and the project's local images are removed between jobs, so
the second job pulls what the first pushed.

What the test provides instead of the example (and nothing else):
- GitHub `uses:` steps (checkout, setup-python, docker/login-action) and the step named
  "Install builder": the simulated checkout and this test's builder stand in for them.
- GitLab `before_script` (installing git, Python and builder on the job image).
- The runner's Docker: GitLab's DOCKER_HOST/DOCKER_TLS_*/DOCKER_CERT_PATH (the docker:dind
  service) are dropped for the local engine, BUILDER_REGISTRY on GitHub is the loopback
  registry, and a `docker` shim adds `--network host` to `docker run` so that the container
  reaches the loopback server.
Every `${{ ... }}` expression the test must evaluate is one it knows; another fails it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cisim import (
    actions_checkout,
    github_env,
    gitlab_checkout,
    gitlab_env,
    parse_dotenv,
    parse_github_output,
)
from tests.e2e import ci_images
from tests.gitworld import GIT_IDENTITY
from tests.infra.github_server import GitHubServer
from tests.infra.gitlab_server import GitLabServer
from tests.infra.httpbase import LoopbackServer

pytestmark = pytest.mark.docker

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
REPO = "team/app"
MAIN = 'import os\nprint("{marker}", os.environ.get("BUILDER_COMMIT", "") or "baked")\n'
SKIPPED_GITHUB_STEPS = {"Install builder"}
DROPPED_GITLAB_VARIABLES = {"DOCKER_HOST", "DOCKER_TLS_CERTDIR", "DOCKER_TLS_VERIFY",
                            "DOCKER_CERT_PATH"}
TIMEOUT = 900
_EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


@dataclass
class Step:
    job: str
    name: str
    code: int
    stdout: str
    stderr: str


@dataclass
class Pipeline:
    """Where the example runs: servers, registry, images to clean up, every step's output."""

    root: Path
    registry: str
    docker_client: Any
    name: str
    shared: Path  # one wheelhouse for every runner: the engine's layer cache then applies
    config: pytest.Config
    steps: list[Step] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)

    def runner(self, job: str) -> tuple[Path, dict[str, str]]:
        """A fresh runner for `job`: its directory and the environment every runner has."""
        root = self.root / job
        home = root / "home"
        home.mkdir(parents=True)
        for sub in ("wheelhouse", "parents"):
            os.symlink(self.shared / sub, home / sub)
        (root / "docker").mkdir()
        shim = root / "bin"
        shim.mkdir()
        real = shutil.which("docker")
        assert real, "the docker CLI is missing"
        (shim / "docker").write_text(
            "#!/bin/sh\n"
            'case "$1" in run|create) cmd=$1; shift; '
            f'exec {real} "$cmd" --network host "$@";; esac\n'
            f'exec {real} "$@"\n'
        )
        (shim / "docker").chmod(0o755)
        env = {
            "PATH": os.pathsep.join([str(shim), str(Path(sys.executable).parent),
                                     os.environ["PATH"]]),
            "HOME": str(root),
            "BUILDER_HOME": str(home),
            "DOCKER_CONFIG": str(root / "docker"),
            **GIT_IDENTITY,
        }
        return root, env

    def shell(self, job: str, name: str, script: str, env: Mapping[str, str],
              cwd: Path) -> Step:
        path = self.root / f"{job}-{len(self.steps)}.sh"
        path.write_text(script)
        keep = {k: v for k, v in os.environ.items()
                if k in ("LANG", "LC_ALL", "TMPDIR", "PYTHONPATH")}
        done = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(path)],
                              cwd=cwd, env={**keep, **env}, capture_output=True, text=True,
                              timeout=TIMEOUT, check=False)
        step = Step(job, name, done.returncode, done.stdout, done.stderr)
        self.steps.append(step)
        assert step.code == 0, f"{job}: {name} failed:\n{done.stdout}\n{done.stderr}"
        return step

    def between_jobs(self) -> None:
        """The next job runs elsewhere: drop every local tag of the project's images.

        Their layers are kept under another name (tests/e2e/ci_images.py): that saves the
        next example a base build, and this test does not need the layers gone.
        """
        assert ci_images.remove_project(self.docker_client, self.name, self.config, keep=True)

    def assert_no_secret(self) -> None:
        """No token in any step's output or any file, but the token files the examples
        write on purpose (private, for the container's read-only mount)."""
        texts = [s.stdout + s.stderr for s in self.steps]
        for path in self.root.rglob("*"):
            if not path.is_file() or ".git" in path.parts or path.suffix == ".sh":
                continue
            if path.name in ("builder-token", ".builder-token"):
                assert path.stat().st_mode & 0o077 == 0, path
                continue
            texts.append(path.read_text(errors="replace"))
        for secret in self.secrets:
            for text in texts:
                assert secret not in text


@pytest.fixture
def pipeline(request, tmp_path, tmp_path_factory, registry, docker_client,
             parent_image) -> Iterator[Pipeline]:
    made = Pipeline(tmp_path, registry, docker_client, f"ci-example-{uuid.uuid4().hex[:8]}",
                    ci_images.shared_cache(tmp_path_factory), request.config)
    yield made
    ci_images.remove_project(docker_client, made.name, request.config)


def start(cls: type[LoopbackServer], root: Path, pipeline: Pipeline, marker: str
          ) -> Iterator[Any]:
    server = cls(root / "repos", work_dir=root / "work")
    server.start()
    try:
        handle = server.create_repo(REPO)
        handle.commit({"builder.yaml": f"name: {pipeline.name}\ncommand: [python, main.py]\n",
                       "main.py": MAIN.format(marker=marker)}, "v1")
        handle.push()
        pipeline.secrets.append(server.token)
        yield server, handle
    finally:
        server.stop()


def evaluate(value: Any, context: Mapping[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        expression = match.group(1)
        assert expression in context, f"the test does not know ${{{{ {expression} }}}}"
        return context[expression]

    return _EXPRESSION.sub(one, str(value))


# ---------------------------------------------------------------------------- GitHub Actions


def test_github_actions_example(pipeline, tmp_path):
    workflow = yaml.safe_load((EXAMPLES / "github-actions.yml").read_text())
    jobs = workflow["jobs"]
    assert list(jobs) == ["build", "run"] and jobs["run"]["needs"] == "build"
    names = {step.get("name") for job in jobs.values() for step in job["steps"]}
    assert names >= SKIPPED_GITHUB_STEPS
    servers = start(GitHubServer, tmp_path / "github", pipeline, "v1")
    server, handle = next(servers)
    try:
        sha = handle.head
        context = {"github.token": server.token}
        needs = run_github_job(pipeline, workflow, "build", server, sha, context)
        assert needs["mode"] == "reuse" and needs["commit"] == sha
        assert needs["image"] == needs["base_image"]
        assert needs["image"].startswith(f"{pipeline.registry}/{pipeline.name}:base-")
        assert needs["image"].endswith(needs["checksum"][:16])
        assert needs["builder_commit"] == sha
        [build_step] = [s for s in pipeline.steps if s.name == "Build and push"]
        assert build_step.stdout.lstrip().startswith("{")  # --json: the object to the log
        summary = (pipeline.root / "build" / "runner").glob("summary-*.md")
        assert any("### builder: reuse" in p.read_text() for p in summary)

        pipeline.between_jobs()
        context.update({f"needs.build.outputs.{k}": v for k, v in needs.items()})
        run_github_job(pipeline, workflow, "run", server, sha, context)
        last = pipeline.steps[-1]
        assert last.stdout.split() == ["v1", sha], last.stderr
        assert "Unable to find image" in last.stderr  # the second runner pulled it
        pipeline.assert_no_secret()
    finally:
        servers.close()


def run_github_job(pipeline: Pipeline, workflow: dict[str, Any], job_name: str,
                   server: GitHubServer, sha: str, context: dict[str, str]) -> dict[str, str]:
    """Run the job's shell steps; return its outputs (for `needs.<job>.outputs`)."""
    job = workflow["jobs"][job_name]
    root, env = pipeline.runner(job_name)
    workspace = root / "work" / "app"
    workspace.parent.mkdir(parents=True)
    if any(str(step.get("uses", "")).startswith("actions/checkout@") for step in job["steps"]):
        actions_checkout(server, REPO, workspace, sha=sha)
    else:
        workspace.mkdir()
    ci = github_env(server, REPO, sha, root / "runner", GITHUB_WORKSPACE=str(workspace))
    job_env = {**ci, **env}
    for scope in (workflow.get("env") or {}, job.get("env") or {}):
        job_env.update({k: evaluate(v, context) for k, v in scope.items()})
    job_env["BUILDER_REGISTRY"] = pipeline.registry
    for index, step in enumerate(job["steps"]):
        if "uses" in step or step.get("name") in SKIPPED_GITHUB_STEPS:
            continue
        files = {"GITHUB_OUTPUT": root / "runner" / f"output-{index}",
                 "GITHUB_STEP_SUMMARY": root / "runner" / f"summary-{index}.md",
                 "GITHUB_ENV": root / "runner" / f"env-{index}"}
        for path in files.values():
            path.touch()
        step_env = {k: evaluate(v, context) for k, v in (step.get("env") or {}).items()}
        pipeline.shell(job_name, step.get("name", step["run"][:40]), step["run"],
                       {**job_env, **step_env, **{k: str(v) for k, v in files.items()}},
                       workspace)
        job_env.update(parse_dotenv(files["GITHUB_ENV"].read_text()))
        if "id" in step:
            outputs = parse_github_output(files["GITHUB_OUTPUT"].read_text())
            context.update({f"steps.{step['id']}.outputs.{k}": v for k, v in outputs.items()})
    return {key: evaluate(value, context) for key, value in (job.get("outputs") or {}).items()}


# ---------------------------------------------------------------------------- GitLab CI


def test_gitlab_ci_example_with_a_merged_results_pipeline(pipeline, tmp_path):
    config = yaml.safe_load((EXAMPLES / "gitlab-ci.yml").read_text())
    assert config["stages"] == ["build", "run"] and config["run"]["needs"] == ["build"]
    assert config["build"]["artifacts"]["reports"]["dotenv"] == "build.env"
    servers = start(GitLabServer, tmp_path / "gitlab", pipeline, "v1")
    server, handle = next(servers)
    try:
        handle.commit({"main.py": MAIN.format(marker="merged")}, "feature", branch="feature")
        handle.push("feature")
        handle.commit({"notes.txt": "main moved on\n"}, "main", branch="main")
        handle.push()
        handle.git("checkout", "-q", "--detach")
        handle.git("merge", "-q", "--no-ff", "-m", "Merge feature", "feature")
        merge = handle.head
        handle.git("push", "-q", "origin", f"{merge}:refs/merge-requests/1/merge")
        handle.git("checkout", "-q", "main")

        dotenv = run_gitlab_job(pipeline, config, "build", server, merge, {})
        assert dotenv["mode"] == "bake" and dotenv["commit"] == merge
        assert dotenv["image"].startswith(f"{pipeline.registry}/team/app/{pipeline.name}:code-")
        assert dotenv["base_image"].endswith(dotenv["checksum"][:16])
        assert dotenv["builder_commit"] == "" and dotenv["builder_code_repository"] == ""
        build_step = pipeline.steps[-1]
        assert "merge commit" in build_step.stdout  # the reason, in the JSON object

        pipeline.between_jobs()
        run_gitlab_job(pipeline, config, "run", server, merge, dotenv)
        assert pipeline.steps[-1].stdout.splitlines()[-1].split() == ["merged", "baked"]
        pipeline.assert_no_secret()
    finally:
        servers.close()


def run_gitlab_job(pipeline: Pipeline, config: dict[str, Any], job_name: str,
                   server: GitLabServer, sha: str, dotenv: dict[str, str]) -> dict[str, str]:
    """Run the job's `script:` in one shell; return its dotenv report, if any."""
    job = config[job_name]
    root, env = pipeline.runner(job_name)
    project = root / "builds" / REPO
    project.parent.mkdir(parents=True)
    if (job.get("variables") or {}).get("GIT_STRATEGY") == "none":
        project.mkdir()
    else:
        gitlab_checkout(server, REPO, project, sha, extra_ref="refs/merge-requests/1/merge")
    ci = gitlab_env(server, REPO, sha, project,
                    CI_PIPELINE_SOURCE="merge_request_event",
                    CI_REGISTRY=pipeline.registry,
                    CI_REGISTRY_IMAGE=f"{pipeline.registry}/{REPO}",
                    CI_REGISTRY_USER="gitlab-ci-token",
                    CI_REGISTRY_PASSWORD=f"job-{uuid.uuid4().hex}")
    pipeline.secrets.append(ci["CI_REGISTRY_PASSWORD"])
    job_env = {**ci, **env, **dotenv}
    for scope in (config.get("variables") or {}, job.get("variables") or {}):
        for key, value in scope.items():
            if key not in DROPPED_GITLAB_VARIABLES:
                job_env[key] = _expand(str(value), job_env)
    pipeline.shell(job_name, "script", "\n".join(job["script"]) + "\n", job_env, project)
    report = (job.get("artifacts") or {}).get("reports", {}).get("dotenv")
    return parse_dotenv((project / report).read_text()) if report else {}


def _expand(value: str, env: Mapping[str, str]) -> str:
    """GitLab expands $NAME and ${NAME} in variables from the variables known so far."""
    return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: env.get(m.group(1), ""), value)
