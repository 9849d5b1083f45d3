"""The warm container start loads five of builder's modules and nothing outside the standard
library: it runs at every container start, so every import is paid each time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from builder.container.warm import cache_key

WARM_MODULES = ["builder", "builder.cli", "builder.container", "builder.container.codedir",
                "builder.container.warm"]
# Loaded by the interpreter before any import of ours (`-X importtime` lists them too).
_STARTUP = set(sys.stdlib_module_names) | {"encodings", "_distutils_hack", "sitecustomize"}


def _imported_by_warm_start(tmp_path: Path) -> list[str]:
    repository = {"type": "git", "name": "app", "config": {"url": "file:///srv/app.git"}}
    commit = "ab" * 20
    (tmp_path / "cache" / cache_key(repository, commit, "")).mkdir(parents=True)
    (tmp_path / "code").mkdir()
    # The code dir stands in for the container's tmpfs mount, and exec for the handover to
    # the user's program: the warm path up to that point is builder's real code.
    script = (
        "import os\n"
        "os.path.ismount = lambda path: True\n"
        "os.execvpe = lambda *args: (print('EXEC', args[1]), os._exit(0))\n"
        "from builder.cli import main\n"
        "main(['entrypoint', '--', 'true'])\n"
    )
    env = {
        **os.environ,
        "BUILDER_COMMIT": commit,
        "BUILDER_CACHE_DIR": str(tmp_path / "cache"),
        "BUILDER_CODE_DIR": str(tmp_path / "code"),
        "BUILDER_CODE_REPOSITORY": json.dumps(repository),
    }
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", script],
        env=env, capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "EXEC ['true']", (done.stdout, done.stderr)
    return [
        line.rpartition("|")[2].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and not line.endswith("imported package")
    ]


def test_the_warm_start_loads_five_builder_modules_and_no_third_party_code(tmp_path):
    modules = _imported_by_warm_start(tmp_path)
    ours = [name for name in modules if name == "builder" or name.startswith("builder.")]
    assert sorted(ours) == WARM_MODULES
    others = {name.split(".")[0] for name in modules} - _STARTUP - {"builder"}
    assert others == set(), others
