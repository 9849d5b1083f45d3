"""What the requirements step installed, and a base built on the previous one.

This file is not imported by builder: it is handed into the install container and run there
by the parent image's `python3` (so: standard library only, and Python 3.7's syntax), with
the staging folder as its argument. Distributions are read from the Python's site-packages
(`purelib`), by their METADATA's name and version.

- `snapshot DIR` (fresh build, before the install): the distributions already there (the
  parent's), into DIR/before.json.
- `report DIR` (fresh build, after the install): prints the report line (see `_report`)
  with what the install added, or why a later build cannot start from this base.
- `plan DIR` (on the previous base, before the install): from the previous base's list
  (DIR/previous.json, from its label) and the new requirement lines, the distributions to
  remove (DIR/remove.txt) and to install (DIR/install.txt). The new set is the requirement
  lines themselves when each is `name==version` (the fresh install could only add what they
  need, and `uv pip check` afterwards proves they need nothing else), else uv's resolution
  of the lines (DIR/resolved.txt; exit 76 asks for it). Exit 75: not on this base, and why.
- `finish DIR` (on the previous base, after the install): checks that site-packages now
  holds the parent's distributions and exactly the new set, compiles the installed
  distributions' files as `--compile-bytecode` does, and prints the report line.
"""

from __future__ import annotations

import csv
import json
import os
import re
import sys
import sysconfig
import warnings
from collections.abc import Iterable
from typing import Any

DECLINE = 75  # the base cannot be built on the previous one: build it from scratch
RESOLVE = 76  # plan needs uv's resolution of the lines in DIR/resolved.txt
# Replaced or removed files stay in the layers below, hidden: at most this share of the
# installed requirements' bytes, or this many bytes, then the base is built afresh.
HIDDEN_SHARE = 0.25
HIDDEN_BYTES = 64 * 2**20

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([A-Za-z0-9][A-Za-z0-9.+!_-]*)$")
_NAME = re.compile(r"[-_.]+")
_OPTION_KEEP = ("-i", "--index-url", "--extra-index-url", "-f", "--find-links", "--no-index",
                "--pre", "--only-binary", "--no-binary")


class Declined(Exception):
    """Why the base cannot be built on the previous one."""


def name_key(name: str) -> str:
    return _NAME.sub("-", name).lower()


def version_key(version: str) -> str:
    """1.0 and 1.0.0 are one version (PEP 440); other spellings are compared as written."""
    version = version.strip().lower()
    if re.match(r"^\d+(\.\d+)*$", version):
        parts = version.split(".")
        while len(parts) > 1 and int(parts[-1]) == 0:
            parts.pop()
        return ".".join(str(int(p)) for p in parts)
    return version


def site_dir() -> str:
    paths = sysconfig.get_paths()
    if os.path.realpath(paths["purelib"]) != os.path.realpath(paths["platlib"]):
        raise Declined("the Python has two site-packages folders (purelib and platlib)")
    return paths["purelib"]


def distributions(site: str) -> dict[str, dict[str, str]]:
    """name key -> {"version", "path"} of each distribution in site-packages (a .dist-info
    folder, or a legacy .egg-info folder or file)."""
    found: dict[str, dict[str, str]] = {}
    try:
        entries = sorted(os.listdir(site))
    except FileNotFoundError:
        return found
    for entry in entries:
        path = os.path.join(site, entry)
        if entry.endswith((".egg", ".egg-link")):
            raise Declined(f"{entry}: an egg")
        if entry.endswith(".dist-info"):
            metadata = os.path.join(path, "METADATA")
        elif entry.endswith(".egg-info"):
            metadata = os.path.join(path, "PKG-INFO") if os.path.isdir(path) else path
        else:
            continue
        name, version = _name_and_version(metadata)
        key = name_key(name)
        if not name or not version or key in found:
            raise Declined(f"{entry}: no name or version, or a second copy")
        found[key] = {"version": version, "path": path}
    return found


def _name_and_version(metadata: str) -> tuple[str, str]:
    name = version = ""
    try:
        with open(metadata, encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                if key == "Name":
                    name = value.strip()
                elif key == "Version":
                    version = value.strip()
    except OSError:
        pass
    return name, version


def record_files(site: str, dist_info: str) -> list[tuple[str, int]]:
    """(absolute path, size) of each file a distribution's RECORD lists."""
    rows: list[tuple[str, int]] = []
    try:
        with open(os.path.join(dist_info, "RECORD"), encoding="utf-8", newline="") as f:
            for row in csv.reader(f):
                if not row:
                    continue
                size = int(row[2]) if len(row) > 2 and row[2].isdigit() else 0
                rows.append((os.path.normpath(os.path.join(site, row[0])), size))
    except OSError:
        raise Declined(f"{os.path.basename(dist_info)} has no RECORD") from None
    return rows


def listing(dists: dict[str, dict[str, str]], names: Iterable[str] | None = None) -> list[str]:
    keys = sorted(dists) if names is None else sorted(names)
    return [f"{key}=={dists[key]['version']}" for key in keys]


def parse_pins(lines: list[str]) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in lines:
        match = _PIN.match(line)
        if match is None or name_key(match.group(1)) in pins:
            # only the line's leading name: the rest may be a URL with a password in it
            name = re.match(r"[A-Za-z0-9._\[\]-]*", line).group(0)  # type: ignore[union-attr]
            raise Declined(f"not a single pin: {name or 'a line'}...")
        pins[name_key(match.group(1))] = match.group(2)
    return pins


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def _report(folder: str, data: dict[str, object]) -> None:
    """One line for builder on the host: the marker it handed in, then JSON."""
    marker = _read(os.path.join(folder, "marker")).strip()
    sys.stdout.write(f"{marker} {json.dumps(data, sort_keys=True)}\n")
    sys.stdout.flush()


def _sizes(site: str, dists: dict[str, dict[str, str]], names: Iterable[str]) -> int:
    return sum(size for key in names
               for _, size in record_files(site, dists[key]["path"]))


def snapshot(folder: str) -> None:
    site = site_dir()
    _write(os.path.join(folder, "before.json"), json.dumps(listing(distributions(site))))


def report(folder: str) -> None:
    try:
        site = site_dir()
        before = set(json.loads(_read(os.path.join(folder, "before.json"))))
        after = distributions(site)
        now = set(listing(after))
        if before - now:
            raise Declined("the install replaced the parent's " + ", ".join(sorted(before - now)))
        added = [key for key in after if f"{key}=={after[key]['version']}" not in before]
        _report(folder, {"installed": listing(after, added),
                         "size": _sizes(site, after, added), "hidden": 0})
    except Declined as exc:
        _report(folder, {"reason": str(exc)})


def plan(folder: str) -> None:
    site = site_dir()
    current = distributions(site)
    state = _state(folder, site, current)
    parent = state["parent"]
    changed_parent = sorted(key for key, version in parent.items()
                            if key not in current or current[key]["version"] != version)
    if changed_parent:
        raise Declined("the parent's " + ", ".join(changed_parent) + " changed")
    installed = {key: dist["version"] for key, dist in current.items() if key not in parent}
    lines = _read(os.path.join(folder, "requirements", "requirements.txt")).splitlines()
    options, constraints = [], []
    for line in lines:
        if "--hash" in line:
            raise Declined("hash-checking mode")
        option = line.split()[0].split("=")[0] if line.startswith("-") else ""
        if option in _OPTION_KEEP:
            options.append(line)  # they apply to the install as to the resolution
        elif option in ("-c", "--constraint"):
            constraints.append(line)
        elif option:
            raise Declined(f"the requirement option {option}")
    resolved = os.path.join(folder, "resolved.txt")
    if os.path.exists(resolved):
        new = parse_pins([line.strip() for line in _read(resolved).splitlines()
                          if line.strip() and not line.lstrip().startswith("#")])
    else:
        try:
            if constraints:
                raise Declined("constraints")
            new = parse_pins([line for line in lines if not line.startswith("-")])
        except Declined:
            _write_state(folder, state)
            sys.exit(RESOLVE)
    shared = sorted(set(parent) & set(new))
    if shared:
        raise Declined("the parent image's Python has " + ", ".join(shared) + " too")
    removed = sorted(set(installed) - set(new))
    changed = sorted(key for key, version in new.items() if key not in installed
                     or version_key(installed[key]) != version_key(version))
    # the previous base's files of what is removed or replaced stay in the layer below
    touched = set(state["touched"]) | (set(removed + changed) & set(state["sizes"]))
    hidden = state["hidden"] + sum(state["sizes"][key] for key in touched)
    if hidden > max(HIDDEN_SHARE * state["size"], HIDDEN_BYTES):
        raise Declined(f"{hidden} bytes of earlier packages would lie hidden in the layers "
                       f"below (more than {HIDDEN_SHARE:.0%} of {state['size']})")
    state.update(touched=sorted(touched), new=new,
                 changed=sorted(set(state["changed"]) | set(changed)))
    _write_state(folder, state)
    _write(os.path.join(folder, "remove.txt"), "".join(f"{key}\n" for key in removed))
    _write(os.path.join(folder, "install.txt"),
           "".join(f"{line}\n" for line in options)
           + "".join(f"{key}=={new[key]}\n" for key in changed))


def _state(folder: str, site: str, current: dict[str, dict[str, str]]) -> dict[str, Any]:
    """What `plan` knows of the previous base: its parent's distributions, the size of each
    of its own, what of them the step touched. Made on the first `plan`, from the previous
    base's list, before anything changed."""
    path = os.path.join(folder, "state.json")
    if os.path.exists(path):
        return dict(json.loads(_read(path)))
    previous = json.loads(_read(os.path.join(folder, "previous.json")))
    old = parse_pins(previous["installed"])
    for key, version in old.items():
        if key not in current or version_key(current[key]["version"]) != version_key(version):
            raise Declined(f"the previous base does not hold {key}=={version}")
    return {"parent": {key: dist["version"] for key, dist in current.items() if key not in old},
            "sizes": {key: _sizes(site, current, [key]) for key in old},
            "size": int(previous["size"]), "hidden": int(previous["hidden"]),
            "touched": [], "changed": [], "new": {}}


def _write_state(folder: str, state: dict[str, Any]) -> None:
    _write(os.path.join(folder, "state.json"), json.dumps(state))


def finish(folder: str) -> None:
    site = site_dir()
    state = json.loads(_read(os.path.join(folder, "state.json")))
    after = distributions(site)
    parent = state["parent"]
    expected = {**parent, **state["new"]}
    have = {key: dist["version"] for key, dist in after.items()}
    extra = sorted(f"{key}=={version}" for key, version in have.items()
                   if version_key(version) != version_key(expected.get(key, "")))
    missing = sorted(f"{key}=={version}" for key, version in expected.items()
                     if version_key(version) != version_key(have.get(key, "")))
    if extra or missing:
        raise Declined(f"site-packages would differ from a fresh install: it has "
                       f"{', '.join(extra) or 'nothing more'}, a fresh install "
                       f"{', '.join(missing) or 'nothing more'}")
    import compileall  # only here: it takes a while to import

    prefix = os.path.join(os.path.realpath(site), "")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore")
        for key in state["changed"]:
            for path, _ in record_files(site, after[key]["path"]) if key in after else ():
                if path.endswith(".py") and os.path.realpath(path).startswith(prefix):
                    compileall.compile_file(path, force=True, quiet=2)
    installed = sorted(set(after) - set(parent))
    hidden = state["hidden"] + sum(state["sizes"][key] for key in state["touched"])
    _report(folder, {"installed": listing(after, installed),
                     "size": _sizes(site, after, installed), "hidden": hidden})


def main(argv: list[str]) -> int:
    command, folder = argv
    try:
        {"snapshot": snapshot, "report": report, "plan": plan, "finish": finish}[command](folder)
    except Declined as exc:
        sys.stderr.write(f"cannot build on the previous base: {exc}\n")
        return DECLINE
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
