"""`make demo`: builder's story on loopback, told with real parts and timings.

1. A sample project whose remote is the git smart-HTTP server of tests/infra (started
   standalone), registered as a code repository with a token.
2. Run 1: clean and pushed; the base image is built once and the container downloads the code.
3. Edit, commit, push. Run 2: nothing is built and the new code runs.
4. A dirty edit. Run 3: a thin code layer is baked and runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TOKEN = "demo-token-" + os.urandom(8).hex()
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Demo",
    "GIT_AUTHOR_EMAIL": "demo@example.invalid",
    "GIT_COMMITTER_NAME": "Demo",
    "GIT_COMMITTER_EMAIL": "demo@example.invalid",
}


def say(text: str) -> None:
    print(text, flush=True)


def start_git_server(repos: Path) -> tuple[subprocess.Popen[str], str]:
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.infra.git_server",
            "--port",
            "0",
            "--repos",
            str(repos),
            "--token",
            TOKEN,
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert server.stdout is not None
    line = server.stdout.readline().strip()
    if not line.startswith("listening on "):
        server.kill()
        raise SystemExit(f"demo: the git server did not start: {line!r}")
    return server, line.removeprefix("listening on ")


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env={**os.environ, **GIT_ENV},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"demo: git {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout.strip()


def builder(env: dict[str, str], *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "builder", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    return done, time.perf_counter() - started


def step(title: str, env: dict[str, str], project: Path) -> dict[str, object]:
    say(f"\n== {title}")
    build, build_seconds = builder(env, "build", str(project), "--json")
    if build.returncode != 0:
        raise SystemExit(f"demo: builder build failed:\n{build.stderr}")
    info = json.loads(build.stdout)
    say(f"   decision: {info['mode']}" + "".join(f"\n     - {r}" for r in info["reasons"]))
    say(f"   image:    {info['image']}")
    say(f"   built:    {', '.join(info['built']) or 'nothing'}  ({build_seconds:.1f} s)")
    run, run_seconds = builder(env, "run", str(project), "--network", "host")
    if run.returncode != 0:
        raise SystemExit(f"demo: builder run failed:\n{run.stderr}")
    for line in run.stdout.splitlines():
        say(f"   program:  {line}")
    say(f"   run:      {run_seconds:.1f} s (container start, code download if any, program)")
    return {
        "step": title,
        "mode": info["mode"],
        "built": len(info["built"]),
        "build_s": build_seconds,
        "run_s": run_seconds,
    }


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="builder-demo-") as tmp:
        root = Path(tmp)
        from tests.infra.gitrepos import bare_path, init_bare

        init_bare(bare_path(root / "repos", "demo/app"))
        server, url = start_git_server(root / "repos")
        try:
            remote = f"{url}/demo/app.git"
            env = {**os.environ, "BUILDER_HOME": str(root / "home"), **GIT_ENV}
            project = root / "app"
            project.mkdir()
            (project / "builder.yaml").write_text(
                "name: builder-demo\nrequirements: [requirements.txt]\ncommand: [python, main.py]\n"
            )
            (project / "requirements.txt").write_text("six==1.16.0\n")
            (project / "main.py").write_text('import six\nprint("hello from version 1")\n')
            git(project, "init", "-q", "-b", "main")
            git(project, "config", "http.extraHeader", f"Authorization: Bearer {TOKEN}")
            git(project, "add", "-A")
            git(project, "commit", "-qm", "version 1")
            git(project, "remote", "add", "origin", remote)
            git(project, "push", "-q", "-u", "origin", "main")
            say(f"sample project {project}, pushed to {remote}")
            done, _ = builder(
                env,
                "code-repository",
                "register",
                "demo",
                "--type",
                "git",
                "--url",
                remote,
                "--token",
                TOKEN,
            )
            if done.returncode != 0:
                raise SystemExit(f"demo: register failed: {done.stderr}")
            say("registered code repository 'demo' (git, token kept in the secret store)")

            rows = [step("run 1: clean and pushed", env, project)]
            (project / "main.py").write_text('import six\nprint("hello from version 2")\n')
            git(project, "commit", "-qam", "version 2")
            git(project, "push", "-q")
            rows.append(step("run 2: edit, commit, push", env, project))
            (project / "main.py").write_text(
                'import six\nprint("hello from my uncommitted edit")\n'
            )
            rows.append(step("run 3: a dirty edit", env, project))

            say("\nstep                         mode   images built  build s  run s")
            for row in rows:
                say(
                    f"{row['step']:<28} {row['mode']:<6} {row['built']:>12}  "
                    f"{row['build_s']:>7.1f}  {row['run_s']:>5.1f}"
                )
        finally:
            server.terminate()
            server.wait(timeout=10)


if __name__ == "__main__":
    main()
