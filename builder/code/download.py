"""The shared download frame: every code download, whatever the repository type, goes here.

`download(repository, commit, directory, subdirectory, verify=...)` is what callers use (the
entrypoint, tests). It

1. checks the destination: it must not exist, or be an empty directory (replaced atomically);
2. stages: the repository's `download_files(commit, staging, subdirectory)` writes into an
   empty temporary directory beside the destination, for any repository type, so a custom
   class gets atomicity for free;
3. checks that no submodule named by a shipped `.gitmodules` was left empty;
4. verifies (optional) the tree against the commit's listing: paths, modes and blob ids;
5. applies the tree's own `.dockerignore` (at the subdirectory root), so the files equal what a
   bake would ship;
6. renames the staging directory into place. After any error nothing is at the destination.

The built-in types' `download_files` use `fetch_atomically` themselves, so that a direct call
(the seed's API) is atomic too. Inside `download` that nests one more staging directory, which
costs a rename; verification then happens once, in the built-in code, which knows the commit's
listing (`wants_verify` tells it whether to).

Also here: streaming an HTTP archive into the safe extractor with retries (`stream_archive`),
and the submodule helpers shared by the archive types.

A `Mirror` (the container's code dir, on a cold start) receives the tree as the archive is
extracted, in the same pass, so that it need not be copied from the cache afterwards. It is
complete only when the tree is exactly one archive (no submodules fetched after it, no
update from a cached tree): `mirror.complete` says so, and the caller copies otherwise.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from builder.code import deadline, treediff
from builder.errors import (
    BuilderError,
    DownloadError,
    IntegrityError,
    NotFoundError,
    UsageError,
)
from builder.state.atomic import staged_directory
from builder.state.secrets import redact

if TYPE_CHECKING:
    from builder.code.archives import ExtractResult, Written
    from builder.code.retry import RetryPolicy

_COMMIT = re.compile(r"^[0-9a-fA-F]{7,64}$")
GITLINK = "160000"
MAX_SUBMODULE_DEPTH = 8
CHUNK = 1 << 16

class Downloadable(Protocol):
    """What `download` needs of a code repository (`BaseCodeRepository` has it)."""

    def download_files(self, commit: str, directory: str,
                       repo_sub_directory: str | None) -> None: ...


#: Listing of a commit's tree: posix path (relative to the downloaded subdirectory) ->
#: (git mode, object id), as `git ls-tree -r` prints it; gitlinks have mode 160000.
Listing = treediff.Listing


# ---------------------------------------------------------------------------- arguments


def validate_commit(commit: str) -> str:
    """A commit hash (7 to 64 hex digits), lower-cased; anything else is a `UsageError`."""
    value = (commit or "").strip()
    if not _COMMIT.match(value):
        raise UsageError(f"commit {commit!r} is not a commit hash (7 to 64 hex digits)")
    return value.lower()


def normalize_subdirectory(subdirectory: str | None) -> str:
    """'' for the whole repository, else a clean relative posix path."""
    raw = (subdirectory or "").replace("\\", "/")
    parts = [part for part in raw.split("/") if part not in ("", ".")]
    if raw.startswith("/") or ".." in parts or any("\0" in part for part in parts):
        raise UsageError(f"subdirectory {subdirectory!r} must be a relative path inside the "
                         "repository")
    return "/".join(parts)


def check_destination(directory: str | os.PathLike[str]) -> Path:
    """The destination as a Path: absent, or an empty directory (not a symlink)."""
    target = Path(directory)
    try:
        info = os.lstat(target)
    except FileNotFoundError:
        return target
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise UsageError(f"download destination {target} exists and is not a directory")
    with os.scandir(target) as entries:
        if any(True for _ in entries):
            raise UsageError(f"download destination {target} is not empty")
    return target


# ---------------------------------------------------------------------------- the frame


@dataclass
class _Frame:
    staging: Path
    verify: bool
    verified: bool = False


_frame: ContextVar[_Frame | None] = ContextVar("builder_download_frame", default=None)


class Mirror:
    """What a download does in the same pass as its extraction, when the tree is one archive:
    fill `path` (an empty directory, if given) with the same tree, and note every entry it
    wrote with its content's digest (`tree_digest` then needs no second read of the tree)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.written: Written = {}
        self.claimed = False  # an archive extraction wrote the tree
        self.spoiled = False  # something else went into the tree too
        self.complete = False  # set by `download`: `path` and `written` are the whole tree

    def tree_digest(self) -> str:
        """`builder.code.files.tree_digest` of the downloaded tree (when `complete`)."""
        from builder.code.files import digest_of_entries, link_digest

        return digest_of_entries(
            (kind, name, link_digest(content) if isinstance(content, str) else content)
            for name, (kind, content) in self.written.items()
        )


_mirror: ContextVar[Mirror | None] = ContextVar("builder_download_mirror", default=None)


def _claim_mirror() -> Mirror | None:
    """The mirror for the first archive of a download; a later one spoils it."""
    mirror = _mirror.get()
    if mirror is None:
        return None
    if mirror.claimed:
        mirror.spoiled = True
        return None
    mirror.claimed = True
    return mirror


def wants_verify(repository: Any, directory: str | os.PathLike[str]) -> bool:
    """Whether a built-in `download_files` writing into `directory` should verify the tree.

    Inside `download`, the frame decides (and learns that verification happened); a direct
    call follows the repository's `verify_download` attribute.
    """
    frame = _frame.get()
    if frame is not None and _same_path(frame.staging, Path(directory)):
        frame.verified = True
        return frame.verify
    return bool(getattr(repository, "verify_download", False))


def fetch_atomically(directory: str | os.PathLike[str], fetch: Callable[[Path], None]) -> None:
    """Run `fetch(empty_dir)` in a staging directory beside `directory`, then rename it there."""
    target = check_destination(directory)
    with deadline.bounded(), staged_directory(target) as staging:
        fetch(staging)


@dataclass(frozen=True)
class CachedTree:
    """An earlier commit's tree of the same repository and subdirectory, as `download` left
    it (its .dockerignore applied), which nobody writes to."""

    commit: str
    path: Path


def download(repository: Downloadable, commit: str, directory: str | os.PathLike[str],
             subdirectory: str | None = None, *, verify: bool = False,
             base: CachedTree | None = None, log: Callable[[str], None] | None = None,
             mirror: Mirror | None = None) -> Path:
    """Download `commit` (only `subdirectory`, if given) of `repository` into `directory`.

    Works for every repository type, custom classes included. With `base`, a repository
    that has `update_files` (see `builder.code.updates`) may fetch only what changed since it.
    With `mirror`, an archive download fills that empty directory too (`mirror.complete`
    says whether it holds the whole tree; after an error, its contents are the caller's to
    clear). Raises a `DownloadError` (or a `UsageError` for bad arguments); on any error
    nothing is left at `directory`.
    """
    commit = validate_commit(commit)
    subdir = normalize_subdirectory(subdirectory)
    target = check_destination(directory)
    verify = verify or bool(getattr(repository, "verify_download", False))
    with deadline.bounded(), staged_directory(target) as staging:
        frame = _Frame(staging, verify)
        reset = _frame.set(frame)
        mirrored = _mirror.set(mirror)
        try:
            fetched = _call_update_files(repository, base, commit, staging, subdir, log)
            if fetched is None:
                _call_download_files(repository, commit, staging, subdir)
            elif log is not None and base is not None:
                log(f"updated from {base.commit[:12]}: {fetched} changed "
                    f"file{'' if fetched == 1 else 's'} fetched")
        finally:
            _mirror.reset(mirrored)
            _frame.reset(reset)
        if not staging.is_dir() or staging.is_symlink():
            raise DownloadError(f"{_describe(repository)}: download_files removed its target "
                                "directory")
        if verify and not frame.verified:
            _verify_custom(repository, commit, subdir, staging)
        if not subdir:
            check_submodules_present(staging, _describe(repository))
        gone: list[str] = []
        apply_dockerignore(staging, gone)
        if mirror is not None and mirror.claimed and not mirror.spoiled and fetched is None:
            if mirror.path is not None:
                apply_dockerignore(mirror.path)
            for path in gone:
                mirror.written.pop(path, None)
            mirror.complete = True
    return target


def _call_update_files(repository: Downloadable, base: CachedTree | None, commit: str,
                       staging: Path, subdir: str,
                       log: Callable[[str], None] | None = None) -> int | None:
    """How many files the update fetched; None when there is none to make (download). A
    failed update is logged with its reason: the full download that follows takes longer."""
    update = getattr(repository, "update_files", None)
    if base is None or base.commit == commit or not callable(update):
        return None
    if not _is_directory(base.path):
        return None
    try:
        fetched = update(base.commit, str(base.path), commit, str(staging), subdir or None)
    except IntegrityError:
        raise
    except BuilderError as exc:
        if any(staging.iterdir()):
            raise _cleaned(exc) from None
        if log is not None:
            log(f"no update from {base.commit[:12]} ({_one_line(exc)}): downloading in full")
        return None  # the full download says what is wrong, if something still is
    return fetched if isinstance(fetched, int) else None


def _call_download_files(repository: Downloadable, commit: str, staging: Path,
                         subdir: str) -> None:
    try:
        repository.download_files(commit, str(staging), subdir or None)
    except BuilderError as exc:
        raise _cleaned(exc) from None
    except Exception as exc:  # a custom class's own error: one line, redacted
        raise DownloadError(redact(
            f"{_describe(repository)}: download_files failed: {type(exc).__name__}: "
            f"{_one_line(exc)}"
        )) from None


def _verify_custom(repository: Any, commit: str, subdir: str, root: Path) -> None:
    listing = getattr(repository, "tree_listing", None)
    if not callable(listing):
        raise DownloadError(
            f"{_describe(repository)}: verify_download is on, but {type(repository).__name__} "
            "has no tree_listing(commit, subdirectory) method to verify against"
        )
    try:
        expected = dict(listing(commit, subdir or None))
    except BuilderError as exc:
        raise _cleaned(exc) from None
    except Exception as exc:
        raise DownloadError(redact(
            f"{_describe(repository)}: tree_listing failed: {type(exc).__name__}: "
            f"{_one_line(exc)}"
        )) from None
    verify_tree(root, expected, what=_describe(repository))


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:500]


def _cleaned(exc: BuilderError) -> BuilderError:
    """A builder error from a custom class, as one redacted line (the class is kept)."""
    text = redact(_one_line(exc))
    if text == str(exc):
        return exc
    try:
        return type(exc)(text)
    except TypeError:
        return DownloadError(text)


def _describe(repository: Any) -> str:
    name = getattr(repository, "name", None)
    return f"code repository {name!r}" if name else type(repository).__name__


def _is_directory(path: Path) -> bool:
    """A real directory, not a link to one."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def _same_path(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


# ---------------------------------------------------------------------------- verification


def verify_tree(root: Path, expected: Mapping[str, tuple[str, str]], *, what: str,
                blob: Callable[[str], bytes] | None = None) -> None:
    """Raise `IntegrityError` unless the files below `root` are exactly `expected`.

    Files below a gitlink (a submodule's own files) are not in the listing and not compared.
    With `blob` (blob id -> its first bytes), a file whose listed blob is a Git LFS pointer may
    hold the content the pointer names instead (see `builder.code.lfs`).
    """
    from builder.code.gitobjects import tree_listing_matches

    gitlinks = [path for path, (mode, _sha) in expected.items() if mode == GITLINK]
    differences = [
        line for line in tree_listing_matches(root, dict(expected))
        if not (line.startswith("extra: ") and _below_any(line[len("extra: "):], gitlinks))
        and not (blob is not None and line.startswith("content: ")
                 and _lfs_content(root, line[len("content: "):], expected, blob))
    ]
    if differences:
        shown = "; ".join(differences[:5])
        more = f" and {len(differences) - 5} more" if len(differences) > 5 else ""
        raise IntegrityError(redact(
            f"{what}: the downloaded tree does not match the commit: {shown}{more}"
        ))


def _lfs_content(root: Path, path: str, expected: Mapping[str, tuple[str, str]],
                 blob: Callable[[str], bytes]) -> bool:
    from builder.code.lfs import content_matches, parse_pointer

    pointer = parse_pointer(blob(expected[path][1]))
    return pointer is not None and content_matches(root / path, pointer)


def _below_any(path: str, prefixes: Iterable[str]) -> bool:
    return any(path.startswith(prefix + "/") for prefix in prefixes)


def relative_listing(entries: Iterable[tuple[str, str, str]], subdir: str) -> Listing:
    """(full path, mode, sha) triples of blobs and gitlinks -> a listing below `subdir`."""
    prefix = subdir + "/" if subdir else ""
    listing: Listing = {}
    for path, mode, sha in entries:
        if mode.lstrip("0").startswith("4"):  # trees: implied by their files
            continue
        if prefix and not path.startswith(prefix):
            continue
        listing[path[len(prefix):]] = (mode, sha)
    return listing


# ---------------------------------------------------------------------------- .dockerignore


def apply_dockerignore(root: Path, gone: list[str] | None = None) -> int:
    """Remove what the tree's own `.dockerignore` excludes; return how many entries went (and
    add their paths, relative to `root`, to `gone`).

    Files and symlinks are matched one by one (an exception pattern can keep a file inside an
    excluded directory); a directory that the removals leave empty goes too, as a bake would
    not ship it. Directories that were empty to begin with stay.
    """
    from builder.code.dockerignore import DockerIgnore

    ignore = DockerIgnore.load(root)
    if not ignore:
        return 0
    from builder.state.trees import walk

    removed = 0
    visited = []
    for folder in walk(root):  # top down; then bottom up for the emptied directories
        for entry in folder.files:
            if ignore.excluded(folder.prefix + entry.name):
                os.unlink(entry.path)
                removed += 1
                if gone is not None:
                    gone.append(folder.prefix + entry.name)
        visited.append((folder.path, folder.prefix, bool(folder.files or folder.directories)))
    for path, prefix, had_entries in reversed(visited[1:]):
        if had_entries and not os.listdir(path):
            os.rmdir(path)
            removed += 1
            if gone is not None:
                gone.append(prefix.rstrip("/"))
    return removed


def read_timeout() -> float:
    """Seconds to wait for an HTTP answer or the next chunk (BUILDER_HTTP_TIMEOUT, 60), at
    most what is left of the download's deadline."""
    try:
        seconds = float(os.environ.get("BUILDER_HTTP_TIMEOUT", "60"))
    except ValueError:
        seconds = 60.0
    return deadline.bound(seconds) or seconds


# ---------------------------------------------------------------------------- submodules

R = TypeVar("R")


def fill_archive_submodules(
    *, what: str, service_url: str, superproject: str, target: Path, subdir: str,
    candidates: list[str], listing: Callable[[], list[tuple[str, str, str]]],
    gitmodules: Callable[[], str], same_server: Callable[[str], R | None],
    download: Callable[[R, str, Path], None], depth: int,
) -> None:
    """Fill an archive's submodule placeholders (empty directories) at their gitlink commits.

    Archives from GitHub and GitLab leave submodules empty. Each one that lives on the same
    service is downloaded as an archive of its own; any other fails, saying how to proceed.
    """
    prefix = subdir + "/" if subdir else ""
    wanted = {prefix + path for path in candidates}
    gitlinks = {path: link for path, mode, link in listing() if mode == "160000" and path in wanted}
    if not gitlinks:
        return  # empty trees, which git can hold; nothing is missing
    modules = {module.path: module.url for module in parse_gitmodules(gitmodules())}
    for path, link in sorted(gitlinks.items()):
        where = f"{what}: submodule {path!r}"
        url = modules.get(path)
        if url is None:
            raise DownloadError(f"{where} (commit {link[:12]}) has no entry in .gitmodules")
        resolved = resolve_submodule_url(url, superproject)
        other = same_server(resolved)
        if other is None:
            raise DownloadError(redact(
                f"{where} lives at {resolved}, not on {service_url}, so it cannot be downloaded "
                "as an archive with this token; register the repository with --type git (which "
                "fetches submodules with your git credentials), or vendor the submodule"
            ))
        if depth + 1 > MAX_SUBMODULE_DEPTH:
            raise DownloadError(f"{where}: submodules nest deeper than {MAX_SUBMODULE_DEPTH}")
        download(other, link, target / path[len(prefix):])



@dataclass(frozen=True)
class Submodule:
    path: str  # from the repository root
    url: str  # as written in .gitmodules (may be relative)


_SECTION = re.compile(r'^\[\s*submodule\s+"((?:[^"\\]|\\.)*)"\s*\]\s*$')
_KEY = re.compile(r"^([A-Za-z][A-Za-z0-9-]*)\s*(?:=\s*(.*))?$")


def parse_gitmodules(text: str) -> list[Submodule]:
    """The submodules a `.gitmodules` file declares (git-config syntax, the common subset)."""
    modules: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            match = _SECTION.match(line)
            current = modules.setdefault(match.group(1), {}) if match else None
            continue
        if current is None:
            continue
        match = _KEY.match(line)
        if match:
            current[match.group(1).lower()] = _config_value(match.group(2) or "")
    return [Submodule(values["path"].strip("/"), values["url"])
            for values in modules.values() if values.get("path") and values.get("url")]


def _config_value(raw: str) -> str:
    out: list[str] = []
    quoted = False
    i = 0
    while i < len(raw):
        char = raw[i]
        if char == '"':
            quoted = not quoted
        elif char == "\\" and i + 1 < len(raw):
            i += 1
            out.append({"n": "\n", "t": "\t", "b": "\b"}.get(raw[i], raw[i]))
        elif char in "#;" and not quoted:
            break
        else:
            out.append(char)
        i += 1
    return "".join(out).strip()


def resolve_submodule_url(url: str, superproject_url: str) -> str:
    """A submodule URL as git resolves it: `./x` and `../x` are relative to the superproject's
    remote URL (which counts as a directory)."""
    if not (url.startswith("./") or url.startswith("../")):
        return url
    base = superproject_url.rstrip("/")
    rest = url
    while True:
        if rest.startswith("./"):
            rest = rest[2:]
        elif rest.startswith("../"):
            rest = rest[3:]
            head, sep, _ = base.rpartition("/")
            if not sep or not head or head.endswith(":/"):
                raise DownloadError(f"submodule URL {url!r} goes above {superproject_url!r}")
            base = head
        else:
            break
    return f"{base}/{rest}"


def empty_directories(root: Path) -> list[str]:
    """Relative posix paths of the directories below `root` that have no entries."""
    found: list[str] = []
    pending = [(root, "")]
    while pending:
        folder, prefix = pending.pop()
        with os.scandir(folder) as scan:
            entries = list(scan)
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                pending.append((Path(entry.path), prefix + entry.name + "/"))
        if not entries and prefix:
            found.append(prefix.rstrip("/"))
    return sorted(found)


def check_submodules_present(root: Path, what: str) -> None:
    """A shipped `.gitmodules` must not name a submodule that arrived empty."""
    path = root / ".gitmodules"
    if not path.is_file() or path.is_symlink():
        return
    text = path.read_text(encoding="utf-8", errors="replace")
    for module in parse_gitmodules(text):
        folder = root / module.path
        if folder.is_dir() and not folder.is_symlink() and not any(folder.iterdir()):
            raise DownloadError(
                f"{what}: submodule {module.path!r} ({redact(module.url)}) arrived empty; the "
                "code must not run without it (fetch it in download_files, or vendor it)"
            )


# ---------------------------------------------------------------------------- HTTP archives


class _Response(Protocol):
    def iter_content(self, chunk_size: int) -> Iterator[bytes]: ...
    def close(self) -> None: ...


class NetworkReader:
    """A file-like reader over an HTTP body's chunks that remembers a network failure.

    A failure while reading is raised as `OSError`, which the extractor reports as a truncated
    archive; `failure` then says that the network, not the archive, was at fault, so the caller
    can retry. The failure text holds no URL (URLs can carry one-off download tokens).
    """

    def __init__(self, chunks: Iterator[bytes], expected: int | None = None) -> None:
        self._chunks = chunks
        self._buffer = b""
        self._done = False
        self._expected = expected  # Content-Length, when the body is not content-encoded
        self.failure: str | None = None
        self.received = 0

    def read(self, size: int = -1) -> bytes:
        while not self._done and (size < 0 or len(self._buffer) < size):
            try:
                chunk = next(self._chunks)
            except StopIteration:
                self._done = True
                if self._expected is not None and self.received < self._expected:
                    # urllib3 1.x ends a body that is cut short without an error.
                    self.failure = "connection broken"
                    raise OSError(f"the body ended after {self.received} of "
                                  f"{self._expected} bytes") from None
                break
            except Exception as exc:
                self._done = True
                self.failure = network_failure(exc)
                raise OSError(f"the connection broke off after {self.received} bytes") from None
            self.received += len(chunk)
            self._buffer += chunk
        if size < 0:
            data, self._buffer = self._buffer, b""
        else:
            data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def readable(self) -> bool:
        return True


_URL = re.compile(r"(?i)\b[a-z][a-z0-9+.\-]*://\S+|/\S*\?\S+")


def network_failure(exc: BaseException) -> str:
    """A short description of a network error, without URLs or query strings."""
    text = str(exc)
    inner = re.search(r"\(([A-Za-z]*(?:Error|Exception|Read)[^()]*)", text)
    if "Read timed out" in text or "timed out" in text.lower():
        summary = "read timed out"
    elif "IncompleteRead" in text or "Connection broken" in text or "prematurely" in text:
        summary = "connection broken"
    elif "reset" in text.lower():
        summary = "connection reset"
    elif "refused" in text.lower():
        summary = "connection refused"
    elif inner:
        summary = inner.group(1)
    else:
        summary = type(exc).__name__
    return redact(_URL.sub("<url>", summary))[:200]


def stream_archive(open_response: Callable[[], _Response], target: Path, *, what: str,
                   policy: RetryPolicy, strip_components: int = 1,
                   subdirectory: str = "") -> ExtractResult:
    """GET an archive (via `open_response`) and extract it into the empty directory `target`.

    `open_response` returns a streamed response with a 2xx status or raises (`Retryable` for a
    transient failure). A connection that breaks mid-body is retried with a fresh, empty
    `target`; a corrupt archive, an unsafe member or a missing subdirectory fail at once.
    """
    from builder.code.archives import extract_tar
    from builder.code.retry import Retryable

    active = deadline.current()
    mirror = _claim_mirror()

    def attempt() -> ExtractResult:
        clear_directory(target)
        if mirror is not None:
            mirror.written.clear()
            if mirror.path is not None:
                clear_directory(mirror.path)
        if active is not None:
            active.check(what, "the archive")
        response = open_response()
        reader = NetworkReader(response.iter_content(CHUNK), expected_length(response))
        watch = active.watch(response) if active is not None else contextlib.nullcontext()
        try:
            with watch:
                return extract_tar(reader, target, strip_components=strip_components,  # type: ignore[arg-type]
                                   subdirectory=subdirectory,
                                   mirror=mirror.path if mirror is not None else None,
                                   written=mirror.written if mirror is not None else None)
        except DownloadError as exc:
            if active is not None and active.expired():
                received = f" ({reader.received} bytes received)" if reader.received else ""
                raise _cleaned(active.error(what, f"the archive{received}")) from None
            if reader.failure is not None:
                raise Retryable(DownloadError(
                    f"{what}: the connection broke off during the download "
                    f"({reader.failure}, {reader.received} bytes received)"
                )) from exc
            if isinstance(exc, NotFoundError) and subdirectory:
                raise NotFoundError(
                    f"{what}: the commit has no directory {subdirectory!r}"
                ) from exc
            raise type(exc)(redact(f"{what}: {exc}")) from exc
        finally:
            with contextlib.suppress(Exception):
                response.close()

    return policy.run(attempt)


def expected_length(response: Any) -> int | None:
    """The body's Content-Length, when it counts the bytes `iter_content` yields."""
    headers = getattr(response, "headers", None) or {}
    length = str(headers.get("Content-Length", "")).strip()
    if not length.isdigit() or headers.get("Content-Encoding", "identity") != "identity":
        return None
    return int(length)


def clear_directory(folder: Path) -> None:
    """Empty a directory (after a failed try), keeping the directory itself."""
    from builder.state.atomic import remove_tree

    folder.mkdir(parents=True, exist_ok=True)
    with os.scandir(folder) as scan:
        entries = list(scan)
    for entry in entries:
        remove_tree(Path(entry.path))
