"""`builder entrypoint` outside containers, as CI and tests use it: the contract env only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from builder.container.entrypoint import Contract
from tests.infra.gitrepos import Executable, Symlink

PROGRAM = "import os, pathlib; print(pathlib.Path('msg.txt').read_text().strip(), os.getcwd())"


def entrypoint(env: dict[str, str], *command: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("BUILDER_")}
    full.update(env)
    return subprocess.run(
        [sys.executable, "-m", "builder", "entrypoint", "--", *command],
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def served(git_server, tmp_path):
    """A repository on the git server with a project in `app/`, and the contract env for it."""
    handle = git_server.create_repo("team/mono")
    sha = handle.commit(
        {
            "app/msg.txt": "hello from the commit\n",
            "app/run.sh": Executable("echo run\n"),
            "app/link.txt": Symlink("msg.txt"),
            "app/.dockerignore": "secret.txt\n",
            "app/secret.txt": "not shipped\n",
            "other/x.txt": "outside the project\n",
        },
        "first",
    )
    handle.push()
    token_file = tmp_path / "token"
    token_file.write_text(git_server.token + "\n")
    env = {
        "BUILDER_CODE_DIR": str(tmp_path / "code"),
        "BUILDER_COMMIT": sha,
        "BUILDER_SUBDIRECTORY": "app",
        "BUILDER_CODE_REPOSITORY": json.dumps(
            {"type": "git", "name": "mono", "config": {"url": f"{git_server.url}/team/mono.git"}}
        ),
        "BUILDER_TOKEN_FILE": str(token_file),
        "BUILDER_CACHE_DIR": str(tmp_path / "cache"),
    }
    return git_server, env, sha


def test_bake_mode_execs_in_the_code_dir(tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    (code / "msg.txt").write_text("baked\n")
    done = entrypoint({"BUILDER_CODE_DIR": str(code)}, sys.executable, "-c", PROGRAM)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["baked", str(code)]


def test_reuse_downloads_the_subdirectory_at_the_commit(served):
    _, env, _ = served
    done = entrypoint(env, sys.executable, "-c", PROGRAM + "; import sys; print(sys.path[1])")
    assert done.returncode == 0, done.stderr
    code = Path(env["BUILDER_CODE_DIR"])
    assert done.stdout.split() == ["hello", "from", "the", "commit", str(code), str(code)]
    assert sorted(p.name for p in code.iterdir()) == [
        ".dockerignore",
        "link.txt",
        "msg.txt",
        "run.sh",
    ]
    assert os.readlink(code / "link.txt") == "msg.txt"
    assert os.access(code / "run.sh", os.X_OK)


def test_a_warm_cache_makes_no_request(served):
    server, env, _ = served
    assert entrypoint(env, "true").returncode == 0
    server.reset_counts()
    done = entrypoint(env, sys.executable, "-c", PROGRAM)
    assert done.returncode == 0, done.stderr
    assert server.request_count == 0


def test_the_program_cannot_change_what_the_next_run_receives(served):
    _, env, _ = served
    vandal = "import pathlib; pathlib.Path('msg.txt').write_text('vandalised'); print('wrote')"
    assert entrypoint(env, sys.executable, "-c", vandal).returncode == 0
    done = entrypoint(env, sys.executable, "-c", PROGRAM)
    assert done.stdout.startswith("hello from the commit"), done.stdout


def test_concurrent_starts_share_one_download_and_never_see_a_partial_tree(served, tmp_path):
    server, env, _ = served
    server.slow_next(1, 1.0)  # the first download is slow, so the second starter must wait
    full = {k: v for k, v in os.environ.items() if not k.startswith("BUILDER_")}
    processes = []
    for index in range(2):
        run_env = {**full, **env, "BUILDER_CODE_DIR": str(tmp_path / f"code{index}")}
        processes.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "builder",
                    "entrypoint",
                    "--",
                    sys.executable,
                    "-c",
                    PROGRAM,
                ],
                env=run_env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outputs = [p.communicate(timeout=120) for p in processes]
    for process, (out, err) in zip(processes, outputs, strict=False):
        assert process.returncode == 0, err
        assert out.startswith("hello from the commit")
    downloads = [err for _, err in outputs if "downloading" in err]
    assert len(downloads) == 1
    cache = Path(env["BUILDER_CACHE_DIR"])
    # One tree, and the git type's object store (see builder.repositories.git_store).
    folders = sorted(p.name for p in cache.iterdir() if p.is_dir())
    assert len(folders) == 2 and folders[1].startswith("git-"), folders


def test_the_exit_code_is_the_programs(served):
    _, env, _ = served
    assert entrypoint(env, sys.executable, "-c", "raise SystemExit(9)").returncode == 9


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"BUILDER_COMMIT": "0" * 40}, "builder: error:"),
        ({"BUILDER_CODE_REPOSITORY": "{not json"}, "BUILDER_CODE_REPOSITORY is not valid JSON"),
        ({"BUILDER_COMMIT": "not-a-sha"}, "is not a commit hash"),
        ({"BUILDER_TOKEN_FILE": "/nonexistent/token"}, "BUILDER_TOKEN_FILE /nonexistent/token"),
        ({"BUILDER_SUBDIRECTORY": "../etc"}, "must be a relative path"),
    ],
)
def test_failures_are_one_line_without_traceback_or_token(served, change, fragment):
    server, env, _ = served
    done = entrypoint({**env, **change}, "true")
    assert done.returncode != 0
    assert fragment in done.stderr
    assert "Traceback" not in done.stderr
    assert server.token not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("builder: error:")
    assert not Path(env["BUILDER_CODE_DIR"]).exists()


def test_wrong_token_fails_and_leaves_nothing_in_the_cache(served, tmp_path):
    _, env, _ = served
    bad = tmp_path / "bad-token"
    bad.write_text("wrong-token-value-123")
    done = entrypoint({**env, "BUILDER_TOKEN_FILE": str(bad)}, "true")
    assert done.returncode == 1
    assert "wrong-token-value-123" not in done.stderr
    cache = Path(env["BUILDER_CACHE_DIR"])
    assert not cache.exists() or [p for p in cache.iterdir() if p.is_dir()] == []


def test_command_not_found_is_one_line(tmp_path):
    (tmp_path / "code").mkdir()
    done = entrypoint({"BUILDER_CODE_DIR": str(tmp_path / "code")}, "no-such-program-xyz")
    assert done.returncode == 1
    assert done.stderr.strip() == "builder: error: command not found: no-such-program-xyz"


def test_cache_key_depends_on_repository_commit_and_subdirectory():
    def key(**env: str) -> str:
        base = {
            "BUILDER_COMMIT": "a" * 40,
            "BUILDER_CODE_REPOSITORY": json.dumps(
                {"type": "git", "name": "n", "config": {"url": "u"}}
            ),
        }
        return Contract.from_environment({**base, **env}).cache_key

    assert key() == key()
    assert key() != key(BUILDER_COMMIT="b" * 40)
    assert key() != key(BUILDER_SUBDIRECTORY="app")
    assert key() != key(
        BUILDER_CODE_REPOSITORY=json.dumps({"type": "git", "name": "n", "config": {"url": "other"}})
    )
