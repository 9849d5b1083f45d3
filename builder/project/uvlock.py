"""uv.lock: checked against pyproject.toml and exported by uv itself.

`uv export --locked` fails when the lock does not match pyproject.toml (what
`uv sync --locked` checks), and otherwise prints the exact set that
`uv sync --locked --no-install-project` installs, with every file's hash. builder asks for
it without the project and without local (path or workspace) packages, which are project
code, and without default groups (dev is off unless `groups:` names it).

uv comes from the `uv` wheel (builder's `uv` extra, `uv.find_uv_bin()`), else from PATH, or
from `BUILDER_UV`. A fresh lock needs no network: the check runs `--offline` first, and only
a failure asks again online, for uv's own message. The export is remembered under
`$BUILDER_HOME/cache/uv-export` (the newest 64), keyed by the files, the choices, uv and its
`UV_*` settings, so an unchanged project asks uv nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

from builder.errors import BuilderError, UsageError
from builder.project.declared import requirement_name
from builder.state.secrets import redact

UV_TIMEOUT = 120
MAX_REMEMBERED = 64
EXPORT_OPTIONS = ("--no-header", "--no-annotate", "--no-emit-project", "--no-emit-local",
                  "--no-default-groups")  # uv >= 0.9 (--no-emit-local); requirements.txt format
_STALE = "needs to be updated"


def uv_binary() -> str:
    configured = os.environ.get("BUILDER_UV")
    if configured:
        return configured
    try:
        import uv  # type: ignore[import-not-found]

        return str(uv.find_uv_bin())
    except (ImportError, FileNotFoundError):
        pass
    found = shutil.which("uv")
    if found:
        return found
    raise UsageError("uv.lock needs uv to be read: install builder's `uv` extra "
                     "(pip install 'builder-cli[uv]'), put uv on PATH, or set BUILDER_UV")


def uv_pins(directory: Path, extras: tuple[str, ...] = (), groups: tuple[str, ...] = (),
            cache: Path | None = None) -> list[str]:
    """The locked set, one normalized requirement per line (hashes kept), sorted."""
    uv = uv_binary()
    key = _cache_key(directory, uv, extras, groups)
    entry = cache / f"{key}.txt" if cache is not None and key else None
    if entry is not None:
        with contextlib.suppress(OSError, UnicodeDecodeError):
            return entry.read_text(encoding="utf-8").splitlines()
    arguments = [*EXPORT_OPTIONS, "--project", str(directory)]
    arguments += [a for extra in extras for a in ("--extra", extra)]
    arguments += [a for group in groups for a in ("--group", group)]
    done = _uv(uv, ["export", "--locked", "--offline", *arguments], directory)
    if done.returncode != 0:
        done = _uv(uv, ["export", "--locked", *arguments], directory)
    if done.returncode != 0:
        raise _failure(directory, done.stderr or done.stdout)
    lines = normalize_export(done.stdout)
    if entry is not None:
        from builder.state.atomic import atomic_write_text

        with contextlib.suppress(OSError):
            atomic_write_text(entry, "".join(f"{line}\n" for line in lines))
            _forget_oldest(entry.parent)
    return lines


def _forget_oldest(cache: Path) -> None:
    entries = sorted(cache.glob("*.txt"), key=lambda path: path.stat().st_mtime)
    for path in entries[:-MAX_REMEMBERED]:
        path.unlink(missing_ok=True)


def normalize_export(text: str) -> list[str]:
    """One line per requirement (continuations joined, hashes sorted), sorted by name.

    Hashes are all or nothing for the installer: when one requirement has none (a git or
    URL requirement), none keeps them."""
    joined = re.sub(r"\\\n\s*", " ", text)
    lines = []
    for raw in joined.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        words = line.split()
        hashes = sorted(w for w in words if w.startswith("--hash="))
        rest = " ".join(w for w in words if not w.startswith("--hash="))
        lines.append((rest, hashes))
    keep = all(hashes for _, hashes in lines)
    out = [" ".join([rest, *(hashes if keep else [])]) for rest, hashes in lines]
    return sorted(out, key=requirement_name)


def _uv(uv: str, arguments: list[str], directory: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "UV_NO_PROGRESS": "1", "UV_PYTHON_DOWNLOADS": "never",
           "NO_COLOR": "1"}
    try:
        return subprocess.run([uv, *arguments], cwd=directory, env=env, capture_output=True,
                              text=True, timeout=UV_TIMEOUT, check=False,
                              stdin=subprocess.DEVNULL)
    except OSError:
        raise UsageError(f"uv ({uv}) cannot be run: install builder's `uv` extra or set "
                         "BUILDER_UV") from None
    except subprocess.TimeoutExpired:
        raise BuilderError(f"{directory / 'uv.lock'}: uv took over {UV_TIMEOUT} s") from None


def _failure(directory: Path, output: str) -> BuilderError:
    lock = directory / "uv.lock"
    if _STALE in output:
        return UsageError(f"{lock}: does not match pyproject.toml: run `uv lock`")
    errors = [line.strip() for line in output.splitlines() if line.strip().startswith("error")]
    detail = (errors or [line.strip() for line in output.splitlines() if line.strip()]
              or ["no output"])[0]
    if "is not defined in the" in detail:  # an unknown extra or group
        return UsageError(redact(f"{lock}: {detail.removeprefix('error: ')} "
                                 "(builder.yaml keys 'extras' and 'groups')"))
    return BuilderError(redact(f"{lock}: uv cannot export it: {detail.removeprefix('error: ')}"))


def _cache_key(directory: Path, uv: str, extras: tuple[str, ...],
               groups: tuple[str, ...]) -> str | None:
    """None when the answer depends on more than the two files (a workspace)."""
    digest = hashlib.sha256()
    try:
        pyproject = (directory / "pyproject.toml").read_bytes()
        lock = (directory / "uv.lock").read_bytes()
        config = (directory / "uv.toml").read_bytes() if (directory / "uv.toml").is_file() else b""
        stat = os.stat(uv)
    except OSError:
        return None
    if b"[tool.uv.workspace]" in pyproject or b"workspace = true" in pyproject:
        return None
    settings = sorted((k, v) for k, v in os.environ.items() if k.startswith("UV_"))
    for part in (pyproject, lock, config, repr((uv, stat.st_size, stat.st_mtime_ns)).encode(),
                 repr((extras, groups, EXPORT_OPTIONS, settings)).encode()):
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()[:40]
