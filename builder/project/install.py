"""The project's install, written by hand: importable, its scripts on PATH, its metadata found.

Two parts (README "Project formats"):

- In the base image, fixed and with no code: `_builder_project.py` and a `.pth` file that
  imports it, in the parent Python's site-packages, and `<project dir>/bin` on PATH. At
  every start of that Python the hook appends the directories listed in
  `<project dir>/paths` to `sys.path`.
- Per commit, the project dir (`.builder-project` beside the code dir): `paths` (the
  import roots inside the code dir, then `site`), `site/<name>-<version>.dist-info` (what
  an editable install records: METADATA, entry points, PEP 610's direct_url.json, RECORD),
  and `bin/<script>` wrappers for the console and GUI scripts. Bake mode puts it in the code
  layer; reuse mode writes it at container start, in a millisecond or two.

Nothing of the project's build backend runs, so a version-only commit needs no image, and
`importlib.metadata.version()` tells the version of the code that runs. This module runs
at every container start: it imports only what the warm start has loaded already (`os`,
`json`, `re`, `hashlib`) and `binascii`; `typing` alone would cost more than the install.
"""

from __future__ import annotations

import binascii
import hashlib
import json
import os
import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PROJECT_DIR_NAME = ".builder-project"
HOOK_MODULE = "_builder_project"
HOOK_STAGING_DIR = "/opt/builder-project-hook"
SIDECAR_LAYOUT = 1  # bump when describe() or render() change what they make of a tree
WRAPPER_SHEBANG = "#!/usr/bin/env python3"

_HOOK = '''"""builder's project hook (README "Project formats"): put the project on sys.path."""
import sys


def _install(listing):
    try:
        with open(listing, encoding="utf-8") as handle:
            entries = handle.read().splitlines()
    except OSError:
        return
    for entry in entries:
        if entry and entry not in sys.path:
            sys.path.append(entry)


_install({listing!r})
'''


def project_dir_for(code_dir: str) -> str:
    """Where the project's install lives: beside the code dir, so the code dir holds exactly
    the shipped files in both modes."""
    parent = os.path.dirname(code_dir.rstrip("/")) or "/"
    return os.path.join(parent, PROJECT_DIR_NAME)


def hook_source(project_dir: str) -> str:
    return _HOOK.format(listing=os.path.join(project_dir, "paths"))


def hook_pth() -> str:
    return f"import {HOOK_MODULE}\n"


def render(info: dict[str, Any], code_dir: str, project_dir: str) -> list[tuple[str, bytes, int]]:
    """(path relative to the project dir, content, mode) for every file of the install."""
    name, version = str(info["name"]), str(info["version"])
    dist_info = f"{_escape(name)}-{version.replace('-', '_')}.dist-info"
    metadata = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    if info.get("summary"):
        metadata.append(f"Summary: {info['summary']}")
    if info.get("requires_python"):
        metadata.append(f"Requires-Python: {info['requires_python']}")
    extras = sorted({m.group(1) for line in info.get("requires_dist", [])
                     for m in [re.search(r'extra == "([^"]+)"$', line)] if m})
    metadata += [f"Provides-Extra: {extra}" for extra in extras]
    metadata += [f"Requires-Dist: {line}" for line in info.get("requires_dist", [])]
    groups: dict[str, dict[str, str]] = info.get("entry_points") or {}
    entry_points = "".join(
        f"[{group}]\n" + "".join(f"{key} = {value}\n" for key, value in entries.items()) + "\n"
        for group, entries in groups.items() if entries)
    url = "file://" + code_dir
    dist_files = {
        "METADATA": "\n".join(metadata) + "\n",
        "INSTALLER": "builder\n",
        "direct_url.json": json.dumps({"url": url, "dir_info": {"editable": True}}),
    }
    if entry_points:
        dist_files["entry_points.txt"] = entry_points
    files: list[tuple[str, bytes, int]] = []
    record = []
    for file_name, text in dist_files.items():
        data = text.encode("utf-8")
        files.append((f"site/{dist_info}/{file_name}", data, 0o644))
        digest = _record_hash(data)
        record.append(f"{dist_info}/{file_name},sha256={digest},{len(data)}\n")
    record.append(f"{dist_info}/RECORD,,\n")
    files.append((f"site/{dist_info}/RECORD", "".join(record).encode("utf-8"), 0o644))
    roots = [os.path.join(code_dir, root) if root else code_dir for root in info["roots"]]
    listing = "".join(f"{entry}\n" for entry in [*roots, os.path.join(project_dir, "site")])
    files.append(("paths", listing.encode("utf-8"), 0o644))
    for group in ("console_scripts", "gui_scripts"):
        for script, reference in (groups.get(group) or {}).items():
            files.append((f"bin/{script}", _wrapper(reference).encode("utf-8"), 0o755))
    return files


def write(info: dict[str, Any], code_dir: str, project_dir: str) -> None:
    """Write the install into `project_dir`, replacing what is there in one rename."""
    parent, base = os.path.split(project_dir.rstrip("/"))
    staging = os.path.join(parent, f".{base}.{os.getpid()}.new")
    if os.path.lexists(staging):
        remove(staging)
    os.mkdir(staging, 0o755)
    try:
        made = {staging}
        for relative, data, mode in render(info, code_dir, project_dir):
            target = os.path.join(staging, relative)
            folder = os.path.dirname(target)
            if folder not in made:
                os.makedirs(folder, 0o755, exist_ok=True)
                made.add(folder)
            descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                                 mode)
            try:
                os.write(descriptor, data)
            finally:
                os.close(descriptor)
            os.chmod(target, mode)
        os.chmod(staging, 0o755)
        if os.path.lexists(project_dir):
            old = os.path.join(parent, f".{base}.{os.getpid()}.old")
            try:
                os.rename(project_dir, old)
            except OSError:  # overlayfs: a directory of a lower layer cannot be renamed
                remove(project_dir)
            else:
                os.rename(staging, project_dir)
                remove(old)
                return
        os.rename(staging, project_dir)
    except BaseException:
        if os.path.lexists(staging):
            remove(staging)
        raise


def remove(path: str) -> None:
    """Remove a file or a directory tree (without following symlinks)."""
    if os.path.islink(path) or not os.path.isdir(path):
        os.unlink(path)
        return
    with os.scandir(path) as scan:
        entries = list(scan)
    for entry in entries:
        remove(entry.path)
    os.rmdir(path)


def sidecar_path(cached_tree: str) -> str:
    """What `describe` said of a cached tree, kept beside it in the download cache."""
    return cached_tree.rstrip("/") + ".project.json"


def read_sidecar(cached_tree: str) -> tuple[bool, dict[str, Any] | None]:
    """(known, project): known is False when the tree was never described by this layout."""
    try:
        with open(sidecar_path(cached_tree), encoding="utf-8") as handle:
            record = json.load(handle)
    except (OSError, ValueError):
        return False, None
    if not isinstance(record, dict) or record.get("layout") != SIDECAR_LAYOUT:
        return False, None
    project = record.get("project")
    return True, project if isinstance(project, dict) else None


def sidecar_text(project: dict[str, Any] | None) -> str:
    return json.dumps({"layout": SIDECAR_LAYOUT, "project": project}, sort_keys=True)


def _wrapper(reference: str) -> str:
    """A console script, as pip writes one: import the object, call it, exit with it."""
    target = reference.split("[", 1)[0].strip()
    module, _, attribute = (part.strip() for part in target.partition(":"))
    head = attribute.split(".", 1)[0]
    return (f"{WRAPPER_SHEBANG}\nimport sys\n\nfrom {module} import {head}\n\n"
            f"if __name__ == \"__main__\":\n    sys.exit({attribute}())\n")


def _record_hash(data: bytes) -> str:
    """RECORD's hash: urlsafe base64 of the sha256, without padding (PEP 376, PEP 627)."""
    encoded = binascii.b2a_base64(hashlib.sha256(data).digest(), newline=False).decode()
    return encoded.rstrip("=").replace("+", "-").replace("/", "_")


def _escape(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()
