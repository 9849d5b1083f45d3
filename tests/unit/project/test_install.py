"""The hand-written install: the files, the swap, and a real Python that reads them through
the hook (site-packages .pth), imports the package, finds the metadata and runs a script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from builder.project import install
from builder.project.metadata import describe

PYPROJECT = """
[project]
name = "My.App"
version = "1.0"
dependencies = ["six"]
[project.scripts]
my-hello = "my_app.cli:main"
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"
"""
CLI = """import importlib.metadata

def main():
    print('hello', importlib.metadata.version('my-app'))
    return 3
"""


def project(root: Path, version: str = "1.0") -> Path:
    code = root / "app" / "code"
    (code / "src" / "my_app").mkdir(parents=True)
    (code / "pyproject.toml").write_text(PYPROJECT.replace('"1.0"', f'"{version}"'))
    (code / "src" / "my_app" / "__init__.py").write_text("")
    (code / "src" / "my_app" / "cli.py").write_text(CLI)
    return code


def test_the_project_dir_sits_beside_the_code_dir():
    assert install.project_dir_for("/app/code") == "/app/.builder-project"
    assert install.project_dir_for("/code/") == "/.builder-project"


def test_render_makes_an_editable_style_dist_info(tmp_path):
    code = project(tmp_path)
    info = describe(code)
    assert info is not None
    files = {path: (data.decode(), mode) for path, data, mode in
             install.render(info, "/app/code", "/app/.builder-project")}
    dist = "site/my_app-1.0.dist-info"
    assert sorted(files) == ["bin/my-hello", "paths", f"{dist}/INSTALLER", f"{dist}/METADATA",
                             f"{dist}/RECORD", f"{dist}/direct_url.json",
                             f"{dist}/entry_points.txt"]
    assert files["paths"] == ("/app/code/src\n/app/.builder-project/site\n", 0o644)
    assert "Name: My.App\nVersion: 1.0\n" in files[f"{dist}/METADATA"][0]
    assert "Requires-Dist: six" in files[f"{dist}/METADATA"][0]
    assert json.loads(files[f"{dist}/direct_url.json"][0]) == {
        "url": "file:///app/code", "dir_info": {"editable": True}}
    assert files["bin/my-hello"][1] == 0o755
    assert files["bin/my-hello"][0].startswith("#!/usr/bin/env python3\n")
    record = files[f"{dist}/RECORD"][0].splitlines()
    assert len(record) == 5 and record[-1] == "my_app-1.0.dist-info/RECORD,,"


def run_python(site: Path, code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """A fresh interpreter that processes `site` as a site-packages directory."""
    program = f"import site; site.addsitedir({str(site)!r})\n{code}"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    return subprocess.run([sys.executable, "-c", program], cwd=cwd, env=env, text=True,
                          capture_output=True, check=False, timeout=60)


def test_a_python_with_the_hook_imports_the_project_and_runs_its_script(tmp_path):
    code = project(tmp_path)
    project_dir = str(tmp_path / "app" / ".builder-project")
    site = tmp_path / "site-packages"
    site.mkdir()
    (site / f"{install.HOOK_MODULE}.py").write_text(install.hook_source(project_dir))
    (site / f"{install.HOOK_MODULE}.pth").write_text(install.hook_pth())
    info = describe(code)
    assert info is not None
    install.write(info, str(code), project_dir)
    script = Path(project_dir) / "bin" / "my-hello"
    done = run_python(site, (
        "import importlib.metadata as m, runpy, sys, my_app\n"
        "print(my_app.__file__, m.version('my-app'), m.distribution('my-app').name)\n"
        f"sys.argv = [{str(script)!r}]\nrunpy.run_path(sys.argv[0], run_name='__main__')\n"),
        tmp_path)
    assert done.returncode == 3, done.stderr
    assert done.stdout.split() == [str(code / "src" / "my_app" / "__init__.py"), "1.0",
                                   "My.App", "hello", "1.0"]

    # a version-only change rewrites the install: one distribution, the new version
    (code / "pyproject.toml").write_text(PYPROJECT.replace('"1.0"', '"1.1"'))
    info = describe(code)
    assert info is not None
    install.write(info, str(code), project_dir)
    done = run_python(site, "import importlib.metadata as m\n"
                            "print(m.version('my-app'), len(list(m.distributions(name='my-app'))))",
                      tmp_path)
    assert done.stdout.split() == ["1.1", "1"], done.stderr
    assert sorted(os.listdir(tmp_path / "app")) == [".builder-project", "code"]


def test_without_an_install_the_hook_does_nothing(tmp_path):
    site = tmp_path / "site-packages"
    site.mkdir()
    (site / f"{install.HOOK_MODULE}.py").write_text(install.hook_source(str(tmp_path / "none")))
    (site / f"{install.HOOK_MODULE}.pth").write_text(install.hook_pth())
    done = run_python(site, "import sys; print(len(sys.path))", tmp_path)
    assert done.returncode == 0 and done.stderr == ""


def test_the_sidecar_round_trips_and_an_unknown_layout_is_not_known(tmp_path):
    cached = str(tmp_path / "entry")
    assert install.read_sidecar(cached) == (False, None)
    Path(install.sidecar_path(cached)).write_text(install.sidecar_text({"name": "a"}))
    assert install.read_sidecar(cached) == (True, {"name": "a"})
    Path(install.sidecar_path(cached)).write_text(install.sidecar_text(None))
    assert install.read_sidecar(cached) == (True, None)
    Path(install.sidecar_path(cached)).write_text('{"layout": 0, "project": {"name": "a"}}')
    assert install.read_sidecar(cached) == (False, None)
