"""A cold start's memory stays flat in the archive's size: the download streams.

`builder entrypoint` downloads two commits of the loopback GitHub server, 10 MB and 40 MB of
incompressible files (so the archives are as large), each into an empty cache. The peak
resident memory of the two processes (`wait4`, through tests/infra/rss.py) may differ by no
more than a fraction of the 30 MB between the archives: the read-ahead and the writers hold
a few MiB at most, whatever the size (a download held in memory adds about 100 MB).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from tests.infra.github_server import GitHubServer
from tests.infra.rss import peak_rss

MB = 1_000_000
FILE = 100_000


def entrypoint_rss(env: dict[str, str]) -> int:
    """Run `builder entrypoint -- true`; its peak RSS in bytes."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("BUILDER_")}
    full.update(env)
    rss, code, err = peak_rss([sys.executable, "-m", "builder", "entrypoint", "--", "true"],
                              full)
    assert code == 0, err
    return rss


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
        peaks[label] = entrypoint_rss({
            "BUILDER_COMMIT": sha,
            "BUILDER_CODE_REPOSITORY": json.dumps(spec),
            "BUILDER_CACHE_DIR": str(tmp_path / f"cache-{label}"),
            "BUILDER_CODE_DIR": str(tmp_path / f"code-{label}"),
            "BUILDER_TOKEN_FILE": str(token),
        })
        files = list((tmp_path / f"code-{label}" / "data").iterdir())
        assert len(files) == (100 if label == "small" else 400)
    assert peaks["large"] - peaks["small"] < 12 * MB, peaks
    assert peaks["large"] < 100 * MB, peaks
