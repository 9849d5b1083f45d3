"""A cold start's memory stays flat in the archive's size: the download streams.

`builder entrypoint` downloads two commits of the loopback GitHub server, the second three
times the size of the first (incompressible files, so the archives are as large), each into
an empty cache. The peak resident memory of the two processes (from `wait4`) may differ by
no more than a fraction of the 40 MB between the archives: the read-ahead and the writers
hold a few MiB at most, whatever the size.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.infra.github_server import GitHubServer

MB = 1_000_000
FILE = 100_000


def peak_rss(env: dict[str, str]) -> int:
    """Run `builder entrypoint -- true`; its peak RSS in bytes."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("BUILDER_")}
    full.update(env)
    proc = subprocess.Popen([sys.executable, "-m", "builder", "entrypoint", "--", "true"],
                            env=full, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    err = proc.stderr.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0, err
    return usage.ru_maxrss * 1024


def test_peak_memory_does_not_grow_with_the_archive(github_server: GitHubServer,
                                                     tmp_path: Path) -> None:
    repo = github_server.create_repo("octo/sizes")
    small = repo.commit({f"data/{n:03d}.bin": os.urandom(FILE) for n in range(100)}, "10 MB")
    large = repo.commit({f"data/{n:03d}.bin": os.urandom(FILE) for n in range(400)}, "40 MB")
    repo.push()
    token = tmp_path / "token"
    token.write_text(github_server.token)
    spec = {"type": "github", "name": "sizes",
            "config": {"owner": "octo", "repository": "sizes", "url": github_server.url}}
    peaks = {}
    for label, sha in (("small", small), ("large", large)):
        peaks[label] = peak_rss({
            "BUILDER_COMMIT": sha,
            "BUILDER_CODE_REPOSITORY": json.dumps(spec),
            "BUILDER_CACHE_DIR": str(tmp_path / f"cache-{label}"),
            "BUILDER_CODE_DIR": str(tmp_path / f"code-{label}"),
            "BUILDER_TOKEN_FILE": str(token),
        })
        files = list((tmp_path / f"code-{label}" / "data").iterdir())
        assert len(files) == (100 if label == "small" else 400)
    assert peaks["large"] - peaks["small"] < 8 * MB, peaks
    assert peaks["large"] < 150 * MB, peaks  # far below the 40 MB archive on top of Python
