"""Plain git login and download: fetch exactly one commit, shallow, only the subdirectory.

The download runs in a temporary repository beside the destination:

1. `git init`, `remote add origin URL` (the URL as registered, never with credentials);
2. `git -c protocol.version=2 fetch --depth 1 --filter=blob:none origin <commit>`: the commit
   and its trees; blobs come later, only for the checked-out paths. A server without filter
   support ignores the filter; a v0 server that refuses unadvertised objects gets a blob-less
   fetch of its branches and tags instead, and the commit must be among them;
3. a cone-mode sparse checkout of the subdirectory, and `checkout --detach <commit>`, which
   fetches the missing blobs in one batch;
4. `git submodule update --init --recursive --depth 1` for the gitlinks below the
   subdirectory, at their pinned commits, with the same credentials (for the same server);
5. the subdirectory's entries are renamed into the (empty) target, and the submodules' `.git`
   files are removed.

Credentials (http and https only) are an `http.<scheme>://<host>/.extraHeader =
Authorization: Basic base64(user:token)` setting, scoped to the repository's server, in a
memory-only file that the git processes inherit as a descriptor and include through
`GIT_CONFIG_*` (`builder.code.gitsecrets`). They never appear in the URL, in argv (which `ps`
shows), in any process's environment, in `.git/config` or on disk. ssh, git:// and local
repositories use the user's own setup. git's error text is redacted before it is shown.
"""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from builder.code import deadline
from builder.code.download import (
    GITLINK,
    Listing,
    fetch_atomically,
    normalize_subdirectory,
    relative_listing,
    validate_commit,
    verify_tree,
    wants_verify,
)
from builder.code.gitcmd import start_git
from builder.code.gitsecrets import GitConfigFile
from builder.code.retry import Retryable, RetryPolicy
from builder.errors import (
    AuthenticationError,
    BuilderError,
    DownloadError,
    NotFoundError,
    RateLimitError,
    UsageError,
)
from builder.repositories.git_store import ObjectStore, store_path
from builder.state.atomic import held_directory, remove_tree
from builder.state.secrets import redact, remember


class GitRemote(Protocol):
    """What a fetch needs of a git repository (`GitCodeRepository` has it)."""

    url: str
    username: str | None

    @property
    def token(self) -> str | None: ...

DEFAULT_TIMEOUT = 600.0
STALL_BYTES, STALL_SECONDS = 1, 60
DEFAULT_USERNAME = "x-access-token"
# Options for every git command here: no hooks, no maintenance, no line-ending conversion,
# no recursion that we did not ask for, no advice on stderr.
_FIXED = (
    "-c", "core.hooksPath=/dev/null",
    "-c", "core.autocrlf=false",
    "-c", "core.symlinks=true",
    "-c", "gc.auto=0",
    "-c", "maintenance.auto=false",
    "-c", "advice.detachedHead=false",
    "-c", "init.defaultBranch=main",
    "-c", "submodule.recurse=false",
    "-c", "protocol.version=2",
    # A server that sends nothing for a minute is stalled: git gives up (and builder retries,
    # within the download's deadline) instead of waiting for the command's timeout.
    "-c", f"http.lowSpeedLimit={STALL_BYTES}",
    "-c", f"http.lowSpeedTime={STALL_SECONDS}",
)
_AUTH = (
    "authentication failed", "could not read username", "could not read password",
    "terminal prompts disabled", "access denied", "returned error: 401",
    "returned error: 403", "invalid username or password", "permission denied",
    "invalid credentials", "bad credentials",
)
_REPO_MISSING = (
    "repository not found", "does not appear to be a git repository", "returned error: 404",
    "project not found", "no such file or directory", "not a git repository",
)
_COMMIT_MISSING = (
    "not our ref", "couldn't find remote ref", "no such remote ref", "unknown revision",
    "bad object", "reference is not a tree", "not a valid object name",
)
_UNADVERTISED = ("unadvertised object", "allow request for unadvertised")
_TRANSIENT = (
    "rpc failed", "early eof", "unexpected disconnect", "hung up unexpectedly",
    "connection reset", "connection refused", "connection timed out", "timed out",
    "returned error: 5", "returned error: 429", "could not resolve host", "transfer closed",
    "empty reply", "curl 18", "curl 52", "curl 56", "gnutls", "ssl_read", "index-pack failed",
    "invalid index-pack output", "protocol error", "failed to connect", "broken pipe",
    "remote end hung up", "operation too slow", "bad pack", "premature end",
)


def _timeout() -> float:
    try:
        return float(os.environ.get("BUILDER_GIT_TIMEOUT", DEFAULT_TIMEOUT))
    except ValueError:
        return DEFAULT_TIMEOUT


# ---------------------------------------------------------------------------- public API


def login(repo: GitRemote, policy: RetryPolicy | None = None) -> None:
    """Check that the repository answers with the configured credentials (`git ls-remote`)."""
    git = _Git(repo, Path(tempfile.gettempdir()))
    try:
        (policy or RetryPolicy.from_environment()).run(
            lambda: git.run(["ls-remote", "--end-of-options", repo.url, "HEAD"],
                            what=_what(repo)))
    finally:
        git.close()


def download_files(repo: GitRemote, commit: str, directory: str | os.PathLike[str],
                   repo_sub_directory: str | None, policy: RetryPolicy | None = None) -> None:
    """Fetch `commit` (only `repo_sub_directory`) into `directory`, atomically.

    With an object store (`repo.download_cache` set: the entrypoint's cache), the objects go
    there and the tree is written from it; on any doubt (a submodule, a server that refuses
    commits by hash, a failure that is not the server's clear answer) the download runs in a
    temporary repository instead, as without a store.
    """
    sha = _full_hash(commit)
    subdir = normalize_subdirectory(repo_sub_directory)
    verify = wants_verify(repo, directory)
    policy = policy or RetryPolicy.from_environment()
    store = _store(repo)
    if store is not None:
        try:
            fetch_atomically(directory, lambda target: _download_into_store(
                repo, store, sha, target, subdir, verify, policy))
            return
        except (AuthenticationError, NotFoundError, RateLimitError, UsageError):
            raise
        except BuilderError:
            pass  # below: the same download without the store
    fetch_atomically(directory, lambda target: _download(repo, sha, target, subdir, verify,
                                                         policy))


def update_files(repo: GitRemote, base_commit: str, base_directory: str, commit: str,
                 directory: str | os.PathLike[str], repo_sub_directory: str | None,
                 policy: RetryPolicy | None = None) -> int | None:
    """`commit` into `directory` from the cached tree of `base_commit` at `base_directory`:
    the store fetches what the base commit lacks, unchanged files are linked from the cached
    tree. Returns how many files it wrote, or None (nothing written) when a full download is
    the better way (no store, the base commit not in it, submodules, a changed
    `.dockerignore`)."""
    from builder.code.updates import plan_update, write_update

    store = _store(repo)
    sha, base = _full_hash(commit), _full_hash(base_commit)
    if store is None:
        return None
    subdir = normalize_subdirectory(repo_sub_directory)
    policy = policy or RetryPolicy.from_environment()
    what = _what(repo, sha)
    with store.open(lambda folder: _Git(repo, folder), what) as objects:
        if not objects.has_commit(base):
            return None
        policy.run(lambda: objects.fetch_commit(sha, blobs=not subdir, have=base))
        new = objects.listing(sha, subdir)
        plan = plan_update(objects.listing(base, subdir), new, limited=False)
        if plan is None:
            return None
        policy.run(lambda: objects.fetch_missing(sha, (new[path][1] for path in plan.fetch)))
        verify = wants_verify(repo, directory)
        with objects.blobs() as blobs:
            return write_update(directory, Path(base_directory), plan,
                                lambda path: (blobs.read(new[path][1]), new[path][1]),
                                what=what, expected=(lambda: new) if verify else None)


def credential_config(repo: GitRemote) -> GitConfigFile | None:
    """git settings that hand the token to git for this repository's server only, in a file
    only git's processes can read (see `builder.code.gitsecrets`); None without a token."""
    token = repo.token
    parts = urlsplit(repo.url) if "://" in repo.url else None
    if not token or parts is None or parts.scheme.lower() not in ("http", "https"):
        return None
    user = repo.username or parts.username or DEFAULT_USERNAME
    basic = base64.b64encode(f"{user}:{token}".encode()).decode("ascii")
    remember(basic)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    origin = f"{parts.scheme.lower()}://{host}" + (f":{parts.port}" if parts.port else "") + "/"
    return GitConfigFile([
        (f"http.{origin}.extraHeader", f"Authorization: Basic {basic}"),
        # No credential helper for this server: a refused token must fail, not prompt or
        # touch stored logins. Other servers (submodules elsewhere) keep the user's helpers.
        (f"credential.{origin}.helper", ""),
    ])


# ---------------------------------------------------------------------------- download


def _full_hash(commit: str) -> str:
    sha = validate_commit(commit)
    if len(sha) not in (40, 64):
        raise UsageError(f"commit {commit!r}: git fetches commits by their full hash "
                         "(40 or 64 hex digits)")
    return sha


def _store(repo: GitRemote) -> ObjectStore | None:
    cache = getattr(repo, "download_cache", None)
    return ObjectStore(store_path(Path(cache), repo.url), repo.url) if cache else None


def _download_into_store(repo: GitRemote, store: ObjectStore, sha: str, target: Path,
                         subdir: str, verify: bool, policy: RetryPolicy) -> None:
    from builder.code.updates import write_fetched_tree

    what = _what(repo, sha)
    with store.open(lambda folder: _Git(repo, folder), what) as objects:
        policy.run(lambda: objects.fetch_commit(sha, blobs=not subdir))
        listing = objects.listing(sha, subdir)
        if subdir and not listing:
            raise NotFoundError(f"{what}: the commit has no directory {subdir!r}")
        if any(mode == GITLINK for mode, _ in listing.values()):
            raise DownloadError(f"{what}: submodules are fetched in a repository of their own")
        policy.run(lambda: objects.fetch_missing(sha, (oid for _, oid in listing.values())))
        with objects.blobs() as blobs:
            write_fetched_tree(target, {path: mode for path, (mode, _) in listing.items()},
                               lambda path: (blobs.read(listing[path][1]), listing[path][1]),
                               what=what)
    if verify:
        verify_tree(target, listing, what=what)


def _download(repo: GitRemote, sha: str, target: Path, subdir: str, verify: bool,
              policy: RetryPolicy) -> None:
    what = _what(repo, sha)
    # locked while in use: a later start removes it if this process is killed
    work_dir = held_directory(target.parent, ".builder-git-")
    work = work_dir.__enter__()
    git = None
    try:
        git = _Git(repo, work)
        git.run(["init", "--quiet", "."], what=what)
        git.run(["remote", "add", "--end-of-options", "origin", repo.url], what=what)
        _fetch_commit(git, sha, what, policy)
        kind = git.run(["cat-file", "-t", f"{sha}:{subdir}" if subdir else sha],
                       what=what, missing=f"the commit has no directory {subdir!r}").strip()
        if kind != b"tree" and subdir:
            raise NotFoundError(f"{what}: {subdir!r} is not a directory in the commit")
        if subdir:
            git.run(["sparse-checkout", "set", "--cone", "--stdin"], what=what,
                    stdin=(subdir + "\n").encode())
        policy.run(lambda: git.run(["checkout", "--quiet", "--detach",
                                    "--no-recurse-submodules", sha], what=what))
        entries = _ls_tree(git, sha, subdir, what)
        gitlinks = [path for path, (mode, _) in entries.items() if mode == "160000"]
        if gitlinks:
            prefix = subdir + "/" if subdir else ""
            paths = [prefix + path for path in gitlinks]
            policy.run(lambda: git.run(
                ["-c", f"protocol.file.allow={'always' if _is_local(repo.url) else 'user'}",
                 "submodule", "update", "--init", "--recursive", "--depth", "1", "--", *paths],
                what=f"{what}: submodules", missing="a submodule's commit"))
        _move_out(work, subdir, target, what)
        if verify:
            verify_tree(target, entries, what=what)
    finally:
        if git is not None:
            git.close()
        remove_tree(work)
        work_dir.__exit__(None, None, None)


def _fetch_commit(git: _Git, sha: str, what: str, policy: RetryPolicy) -> None:
    fetch = ["fetch", "--quiet", "--no-tags", "--no-recurse-submodules", "--depth=1",
             "--filter=blob:none", "origin", sha]
    try:
        policy.run(lambda: git.run(fetch, what=what, missing="commit"))
    except _Unadvertised:
        # A v0 server that only serves its branch and tag tips: fetch those (without blobs)
        # and look for the commit among them.
        policy.run(lambda: git.run(
            ["fetch", "--quiet", "--no-recurse-submodules", "--filter=blob:none", "origin",
             "+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*"], what=what))
        try:
            git.run(["cat-file", "-e", f"{sha}^{{commit}}"], what=what, missing="commit")
        except NotFoundError:
            raise NotFoundError(
                f"{what}: the commit is not in any branch or tag of {git.url}: check that it "
                "was pushed"
            ) from None


def _ls_tree(git: _Git, sha: str, subdir: str, what: str) -> Listing:
    args = ["ls-tree", "-r", "-z", "--full-tree", sha]
    if subdir:
        args += ["--", subdir]
    out = git.run(args, what=what)
    triples = []
    for record in out.split(b"\0"):
        if not record:
            continue
        meta, _, name = record.partition(b"\t")
        mode, _kind, object_id = meta.decode().split()
        triples.append((name.decode("utf-8", "surrogateescape"), mode, object_id))
    return relative_listing(triples, subdir)


def _move_out(work: Path, subdir: str, target: Path, what: str) -> None:
    """Rename the subdirectory's entries into `target`; drop git's own `.git` entries."""
    source = work
    for part in subdir.split("/") if subdir else []:
        source = source / part
        if source.is_symlink() or not source.is_dir():
            raise NotFoundError(f"{what}: {subdir!r} is not a directory in the commit")
    with os.scandir(source) as scan:
        names = [entry.name for entry in scan]
    for name in names:
        if name == ".git" and not subdir:
            continue
        os.rename(source / name, target / name)
    _remove_git_entries(target)


def _remove_git_entries(root: Path) -> None:
    """Remove submodules' `.git` files (git never checks out a path named `.git`)."""
    pending = [root]
    while pending:
        folder = pending.pop()
        with os.scandir(folder) as scan:
            entries = list(scan)
        for entry in entries:
            if entry.name == ".git":
                remove_tree(Path(entry.path))
            elif entry.is_dir(follow_symlinks=False):
                pending.append(Path(entry.path))


def _is_local(url: str) -> bool:
    from builder.repositories.urls import parse_remote_url

    parsed = parse_remote_url(url)
    return parsed is not None and parsed.is_local


def _server_of(url: str) -> str:
    parts = urlsplit(url) if "://" in url else None
    if parts is None or not parts.hostname:
        return "its own server"
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


def _what(repo: GitRemote, sha: str | None = None) -> str:
    where = f"git repository {redact(repo.url)}"
    return f"{where} at {sha[:12]}" if sha else where


# ---------------------------------------------------------------------------- running git


class _Unadvertised(DownloadError):
    """The server refuses to serve a commit by hash (protocol v0 without allow*SHA1InWant)."""


class _Git:
    """Runs git for one repository: fixed options, credentials in the environment only."""

    def __init__(self, repo: GitRemote, cwd: Path) -> None:
        from builder.repositories.urls import clone_url_problem

        problem = clone_url_problem(repo.url)
        if problem:  # registered before builder checked, or written into the store by hand
            raise UsageError(f"git repository URL {problem}")
        self.repo = repo
        self.url = redact(repo.url)
        self.cwd = cwd
        self.credentials = credential_config(repo)
        self.env = {"GIT_LITERAL_PATHSPECS": "1",
                    **(self.credentials.environment() if self.credentials else {})}
        self.timeout = _timeout()

    def close(self) -> None:
        if self.credentials is not None:
            self.credentials.close()

    def run(self, args: Sequence[str], *, what: str, missing: str | None = None,
            stdin: bytes | None = None) -> bytes:
        """Run one git command; raise builder's error for its failure (Retryable if transient).

        `missing` names what a "not found" answer means: "commit" for fetches of the commit,
        another text for other lookups, None when a not-found is about the repository.
        """
        fds = self.credentials.fds if self.credentials else ()
        active = deadline.current()
        if active is not None:
            active.check(what, f"`git {args[0]}`")
        process = start_git([*_FIXED, *args], self.cwd, env=self.env, stdin=stdin,
                            pass_fds=fds).process
        try:
            out, err = process.communicate(stdin, timeout=deadline.bound(self.timeout))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            if active is not None and active.expired():
                raise active.error(what, f"`git {args[0]}`") from None
            raise Retryable(DownloadError(
                f"{what}: `git {args[0]}` took longer than {self.timeout:g} s "
                "(BUILDER_GIT_TIMEOUT)"
            )) from None
        if process.returncode != 0:
            raise self._error(args, err.decode("utf-8", "replace"), what, missing)
        return out

    def _error(self, args: Sequence[str], stderr: str, what: str,
               missing: str | None) -> Exception:
        text = redact(stderr)
        lower = text.lower()
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        fatal = [line for line in lines if line.lower().startswith(("fatal:", "error:"))]
        detail = (fatal[-1] if fatal else lines[-1] if lines else f"exit code of git {args[0]}")
        if any(marker in lower for marker in _AUTH):
            if self.repo.token:
                hint = "check that --token is valid, not expired, and can read the repository"
                if self.repo.username is None and "://" in self.repo.url:
                    hint += " (and whether the server needs a --username)"
            else:
                hint = ("register the repository with --token, or set up your git "
                        "credentials (ssh keys, credential helper) for it")
            return AuthenticationError(f"{what}: the server refused access ({detail}): {hint}")
        if "submodule" in args:
            if any(marker in lower for marker in _TRANSIENT) and not any(
                    marker in lower for marker in _REPO_MISSING + _COMMIT_MISSING):
                return Retryable(DownloadError(f"{what}: {detail}"))
            return DownloadError(
                f"{what}: a submodule could not be fetched at its pinned commit ({detail}): "
                "check the URLs in .gitmodules, that the pinned commits were pushed, and that "
                "your git credentials reach them (the --token is only sent to "
                f"{_server_of(self.repo.url)})"
            )
        if any(marker in lower for marker in _UNADVERTISED):
            return _Unadvertised(f"{what}: {detail}")
        if any(marker in lower for marker in _COMMIT_MISSING) and missing is not None:
            if missing == "commit":
                return NotFoundError(
                    f"{what}: the commit is not on {self.url} ({detail}): check that it was "
                    "pushed"
                )
            return NotFoundError(f"{what}: {missing} ({detail})")
        if any(marker in lower for marker in _REPO_MISSING):
            return NotFoundError(
                f"{what}: no repository at {self.url} ({detail}): check --url"
                + (" and that the token can see it" if self.repo.token else "")
            )
        if any(marker in lower for marker in _TRANSIENT):
            return Retryable(DownloadError(f"{what}: {detail}"))
        if missing is not None and missing != "commit" and args[0] == "cat-file":
            return NotFoundError(f"{what}: {missing}")
        return DownloadError(f"{what}: `git {args[0]}` failed: {detail}")
