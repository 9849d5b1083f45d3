"""builder's own wheel and its runtime dependencies, built on the host for the parent's Python.

The base image installs builder from these wheels with `--no-index`, so the entrypoint in
the image is exactly the CLI's version and the image build needs no index for it.

- builder's wheel is packed here from the package's own files (a development install reads
  its templates from the repository's `templates/`), deterministically: the same files
  give the same wheel bytes. Its metadata (dependencies, extras, console script) is the
  installed distribution's.
- Dependencies are fetched with `pip download --only-binary=:all:` for the parent image's
  Python version, implementation, ABI and platform tags (manylinux for the parent's glibc,
  musllinux for musl), so the host may differ from the parent. A dependency that publishes
  no wheel for the target cannot be installed this way; the error says which.
- The result is cached under `$BUILDER_HOME/wheelhouse/<key>`, keyed by builder's files,
  the extras and extra requirements, and the target; it is written atomically.
"""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import builder
from builder.errors import BuilderError
from builder.state.atomic import staged_directory
from builder.state.locks import file_lock
from builder.state.secrets import redact

DIST_NAME = "builder-cli"
# The wheel's file and .dist-info names use the normalised name (PEP 427, PEP 503).
WHEEL_NAME = "builder_cli"
ZIP_TIME = (1980, 1, 1, 0, 0, 0)
WHEELHOUSE_LAYOUT = "v2"
PIP_TIMEOUT = 900
KEEP_WHEELHOUSES = 6


@dataclass(frozen=True)
class Target:
    """The parent image's Python, as its interpreter reports it."""

    implementation: str  # "cpython"
    version: str  # "3.11.2"
    machine: str  # "x86_64"
    system: str  # "linux"
    libc: str  # "glibc", "musl" or ""
    libc_version: str  # "2.36"

    @property
    def major_minor(self) -> str:
        return ".".join(self.version.split(".")[:2])

    @property
    def platform(self) -> str:
        libc = f" {self.libc} {self.libc_version}" if self.libc else ""
        return f"{self.system}/{self.machine}{libc}"

    def pip_options(self) -> list[str]:
        """`pip download` options that select wheels for this target."""
        nodot = self.major_minor.replace(".", "")
        impl = {"cpython": "cp", "pypy": "pp"}.get(self.implementation, "py")
        options = ["--python-version", self.major_minor, "--implementation", impl]
        if impl == "cp":
            options += ["--abi", f"cp{nodot}"]
        for platform in self.platform_tags():
            options += ["--platform", platform]
        return options

    def platform_tags(self) -> list[str]:
        arch = self.machine
        if self.system != "linux":
            return [f"{self.system}_{arch}"]
        tags: list[str] = []
        major, minor = _version_pair(self.libc_version)
        if self.libc == "glibc" and major == 2:
            for m in range(minor, 4, -1):
                tags.append(f"manylinux_2_{m}_{arch}")
            legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
            tags += [f"{name}_{arch}" for m, name in legacy.items() if m <= minor]
        elif self.libc == "musl" and major == 1:
            tags += [f"musllinux_1_{m}_{arch}" for m in range(minor, -1, -1)]
        tags.append(f"linux_{arch}")
        return tags


def _version_pair(text: str) -> tuple[int, int]:
    match = re.match(r"^(\d+)\.(\d+)", text or "")
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


# ---- builder's own files, identity and wheel ---------------------------------------------

def package_files() -> list[tuple[str, Path]]:
    """(name in the wheel, file) for builder's package, templates included, sorted."""
    package = Path(builder.__file__).resolve().parent
    files: dict[str, Path] = {}
    for path in package.rglob("*"):
        rel = path.relative_to(package)
        if "__pycache__" in rel.parts or path.suffix in (".pyc", ".pyo") or not path.is_file():
            continue
        files[f"builder/{rel.as_posix()}"] = path
    if not any(name.startswith("builder/_templates/") for name in files):
        from builder.images.dockerfile import templates_dir

        for path in templates_dir().rglob("*"):
            if path.is_file():
                files[f"builder/_templates/{path.relative_to(templates_dir()).as_posix()}"] = path
    return sorted(files.items())


@cache
def builder_identity() -> str:
    """builder's version and a hash of its package files: what the image's builder is."""
    digest = hashlib.sha256()
    for name, path in package_files():
        digest.update(name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return f"{builder.__version__}+{digest.hexdigest()[:24]}"


def _metadata() -> tuple[str, str]:
    from importlib import metadata

    try:
        dist = metadata.distribution(DIST_NAME)
        meta = dist.read_text("METADATA")
        entry_points = dist.read_text("entry_points.txt") or ""
    except metadata.PackageNotFoundError:
        meta = None
        entry_points = ""
    if not meta:
        raise BuilderError("builder's package metadata is missing (is builder installed? "
                           "`pip install -e .` in a checkout)")
    meta = re.sub(r"(?m)^Version: .*$", f"Version: {builder.__version__}", meta, count=1)
    return meta, entry_points


def build_wheel(directory: Path) -> Path:
    """Pack builder's wheel into directory; the same files give the same bytes."""
    import base64
    import io
    import zipfile

    meta, entry_points = _metadata()
    version = builder.__version__
    dist_info = f"{WHEEL_NAME}-{version}.dist-info"
    entries: list[tuple[str, bytes, int]] = []
    for name, path in package_files():
        mode = 0o755 if path.stat().st_mode & 0o111 else 0o644
        entries.append((name, path.read_bytes(), mode))
    entries.append((f"{dist_info}/METADATA", meta.encode("utf-8"), 0o644))
    if entry_points:
        entries.append((f"{dist_info}/entry_points.txt", entry_points.encode("utf-8"), 0o644))
    wheel = "Wheel-Version: 1.0\nGenerator: builder\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    entries.append((f"{dist_info}/WHEEL", wheel.encode(), 0o644))
    record = io.StringIO()
    for name, data, _ in entries:
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.write(f"{name},sha256={digest},{len(data)}\n")
    record.write(f"{dist_info}/RECORD,,\n")
    entries.append((f"{dist_info}/RECORD", record.getvalue().encode(), 0o644))
    path = directory / f"{WHEEL_NAME}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data, mode in entries:
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return path


# ---- the wheelhouse -----------------------------------------------------------------------

def wheelhouse_key(target: Target, extras: Sequence[str], extra_requirements: Sequence[str]) -> str:
    text = "\n".join([WHEELHOUSE_LAYOUT, builder_identity(), repr(target),
                      ",".join(sorted(set(extras))), "\n".join(sorted(set(extra_requirements)))])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def requirement(extras: Sequence[str]) -> str:
    """`builder-cli` or `builder-cli[github,gitlab]`."""
    wanted = sorted(set(extras))
    return f"{DIST_NAME}[{','.join(wanted)}]" if wanted else DIST_NAME


def ensure_wheelhouse(home: Path, target: Target, extras: Sequence[str],
                      extra_requirements: Sequence[str], *,
                      log: Callable[[str], None] | None = None) -> Path:
    """The cached wheelhouse directory for these inputs, built if missing."""
    root = home / "wheelhouse"
    directory = root / wheelhouse_key(target, extras, extra_requirements)
    if (directory / ".complete").is_file():
        return directory
    with file_lock(root / f".{directory.name}.lock"):
        if (directory / ".complete").is_file():
            return directory
        if directory.exists():
            from builder.state.atomic import remove_tree

            remove_tree(directory)
        with staged_directory(directory) as staging:
            wheel = build_wheel(staging)
            _download(staging, wheel, target, extras, extra_requirements, log)
            (staging / ".complete").write_text(builder_identity() + "\n", encoding="utf-8")
    prune(root, keep=directory)
    return directory


def prune(root: Path, *, keep: Path, newest: int = KEEP_WHEELHOUSES,
          min_age: float = 3600.0) -> None:
    """Remove old wheelhouses (a development install makes one per change of builder)."""
    import time

    from builder.state.atomic import remove_tree

    done = []
    for directory in root.iterdir():
        marker = directory / ".complete"
        if directory.name.startswith(".") or directory == keep or not marker.is_file():
            continue
        done.append((marker.stat().st_mtime, directory))
    done.sort(reverse=True)
    now = time.time()
    for mtime, directory in done[max(0, newest - 1):]:
        if now - mtime < min_age:
            continue
        with file_lock(root / f".{directory.name}.lock", blocking=False) as acquired:
            if acquired:
                remove_tree(directory)


def _download(directory: Path, wheel: Path, target: Target, extras: Sequence[str],
              extra_requirements: Sequence[str], log: Callable[[str], None] | None) -> None:
    import subprocess

    command = [
        sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
        "--no-input", "--only-binary=:all:", "--dest", str(directory), *target.pip_options(),
        f"{requirement(extras)} @ {wheel.resolve().as_uri()}", *sorted(set(extra_requirements)),
    ]
    if log is not None:
        log(f"downloading builder's runtime dependencies for Python {target.major_minor} "
            f"({target.platform})")
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT,
                                   check=False, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise BuilderError(f"cannot run {sys.executable} -m pip for builder's wheels") from None
    except subprocess.TimeoutExpired:
        raise BuilderError(f"`pip download` took over {PIP_TIMEOUT} s") from None
    if completed.returncode != 0:
        output = completed.stderr or completed.stdout
        lines = [line for line in output.splitlines() if line.strip()]
        detail = " / ".join(lines[-6:]) or f"exit code {completed.returncode}"
        raise BuilderError(redact(
            f"cannot fetch wheels of builder's runtime dependencies for Python "
            f"{target.major_minor} on {target.platform} (they must publish wheels for it): {detail}"
        ))
