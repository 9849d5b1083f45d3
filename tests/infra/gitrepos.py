"""Real git repositories for the loopback test servers.

Two halves:

* writing: :func:`init_bare` makes a bare repository configured for smart HTTP (push allowed,
  fetch of any commit by SHA, partial clone filters), and :class:`RepoHandle` is a working clone
  with an identity that commits a dict of files (text, bytes, :class:`Symlink`,
  :class:`Executable`, ``None`` to delete) and pushes to the bare repository.
* reading: :class:`BareRepo` answers the questions the API servers ask (resolve a ref, commit
  metadata, trees, blobs, branches, merge bases, archives) by running git on the bare repository.

Every git call runs with a clean environment: no system or global config, no prompts.
"""

from __future__ import annotations

import bz2
import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

DEFAULT_BRANCH = "main"
IDENTITY = ("Test Author", "author@example.test")

BARE_CONFIG: dict[str, str] = {
    "http.receivepack": "true",
    "http.uploadpack": "true",
    "uploadpack.allowReachableSHA1InWant": "true",
    "uploadpack.allowAnySHA1InWant": "true",
    "uploadpack.allowTipSHA1InWant": "true",
    "uploadpack.allowFilter": "true",
    "receive.denyDeleteCurrent": "ignore",
}

# One path segment of a repository path ("owner", "group", "sub-group", "repo").
_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


class GitError(RuntimeError):
    """A git command failed; carries the command and its stderr."""


def git_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A minimal environment for git: no user or system config, no prompts, C locale."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "LC_ALL": "C",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_AUTHOR_NAME": IDENTITY[0],
        "GIT_AUTHOR_EMAIL": IDENTITY[1],
        "GIT_COMMITTER_NAME": IDENTITY[0],
        "GIT_COMMITTER_EMAIL": IDENTITY[1],
    }
    if extra:
        env.update(extra)
    return env


def run_git(
    args: Sequence[str | os.PathLike[str]],
    cwd: str | os.PathLike[str] | None = None,
    *,
    input: bytes | None = None,
    check: bool = True,
    env: Mapping[str, str] | None = None,
) -> bytes:
    """Run ``git *args`` and return stdout; raise :class:`GitError` on failure if ``check``."""
    cmd = ["git", *(os.fspath(a) for a in args)]
    proc = subprocess.run(
        cmd,
        cwd=cwd,
        input=input,
        capture_output=True,
        env=git_env(env),
        check=False,
    )
    if check and proc.returncode != 0:
        err = proc.stderr.decode(errors="replace")
        raise GitError(f"{' '.join(cmd)} failed ({proc.returncode}): {err}")
    return proc.stdout


def validate_repo_path(repo_path: str) -> str:
    """Check a repository path like ``owner/repo`` or ``group/sub/project``; return it stripped."""
    path = repo_path.strip("/")
    if path.endswith(".git"):
        path = path[: -len(".git")]
    segments = path.split("/")
    if not path or not all(_SEGMENT.match(s) and not s.endswith(".git") for s in segments):
        raise ValueError(f"invalid repository path: {repo_path!r}")
    return path


def bare_path(repos_dir: Path, repo_path: str) -> Path:
    """Where the bare repository for ``repo_path`` lives: ``{repos_dir}/{repo_path}.git``."""
    return Path(repos_dir) / f"{validate_repo_path(repo_path)}.git"


def init_bare(path: Path, default_branch: str = DEFAULT_BRANCH) -> Path:
    """Create (or re-configure) a bare repository ready for smart HTTP clone, fetch and push."""
    path.mkdir(parents=True, exist_ok=True)
    run_git(["init", "--quiet", "--bare", f"--initial-branch={default_branch}", path])
    for key, value in BARE_CONFIG.items():
        run_git(["config", key, value], cwd=path)
    return path


def list_repos(repos_dir: Path) -> list[str]:
    """Repository paths (``owner/repo``) of all bare repositories under ``repos_dir``, sorted."""
    root = Path(repos_dir)
    found: list[str] = []
    if not root.is_dir():
        return found
    for dirpath, dirnames, _files in os.walk(root):
        for d in list(dirnames):
            if d.endswith(".git"):
                full = Path(dirpath) / d
                if (full / "HEAD").is_file() and (full / "objects").is_dir():
                    rel = full.relative_to(root).as_posix()
                    found.append(rel[: -len(".git")])
                dirnames.remove(d)
    return sorted(found)


@dataclass(frozen=True)
class Symlink:
    """A symbolic link to commit; ``target`` is stored as the link text."""

    target: str


@dataclass(frozen=True)
class Executable:
    """A regular file committed with mode 100755."""

    content: bytes | str


FileContent = bytes | str | Symlink | Executable | None


def _as_bytes(content: bytes | str) -> bytes:
    return content.encode("utf-8") if isinstance(content, str) else content


class RepoHandle:
    """A bare repository plus a working clone that pushes to it (over the file system).

    ``clone_url`` is the server's HTTP URL for the bare repository, without credentials.
    """

    def __init__(
        self,
        path: str,
        bare: Path,
        work: Path,
        clone_url: str,
        default_branch: str = DEFAULT_BRANCH,
    ) -> None:
        self.path = path
        self.bare = bare
        self.work = work
        self.clone_url = clone_url
        self.default_branch = default_branch

    def __repr__(self) -> str:
        return f"RepoHandle({self.path!r}, clone_url={self.clone_url!r})"

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def namespace(self) -> str:
        return self.path.rsplit("/", 1)[0] if "/" in self.path else ""

    def git(self, *args: str) -> str:
        """Run git in the working clone; return stdout as text."""
        return run_git(args, cwd=self.work).decode("utf-8", errors="replace")

    @property
    def head(self) -> str:
        return self.git("rev-parse", "HEAD").strip()

    def checkout(self, branch: str, create: bool = True) -> None:
        """Switch the working clone to ``branch`` (created from HEAD if missing and ``create``)."""
        exists = run_git(["rev-parse", "--verify", "--quiet", f"refs/heads/{branch}"],
                         cwd=self.work, check=False).strip()
        has_head = run_git(["rev-parse", "--verify", "--quiet", "HEAD"],
                           cwd=self.work, check=False).strip()
        if exists:
            self.git("checkout", "--quiet", branch)
        elif not has_head:
            self.git("symbolic-ref", "HEAD", f"refs/heads/{branch}")
        elif create:
            self.git("checkout", "--quiet", "-b", branch)
        else:
            raise GitError(f"no branch {branch!r} in {self.work}")

    def write(self, files: Mapping[str, FileContent]) -> None:
        """Write files into the working tree without committing."""
        for rel, content in files.items():
            target = self.work / rel
            if ".." in Path(rel).parts or Path(rel).is_absolute():
                raise ValueError(f"file path escapes the work tree: {rel!r}")
            if content is None:
                if target.is_symlink() or target.is_file():
                    target.unlink()
                elif target.is_dir():
                    shutil.rmtree(target)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_symlink() or target.is_file():
                target.unlink()
            if isinstance(content, Symlink):
                os.symlink(content.target, target)
            elif isinstance(content, Executable):
                target.write_bytes(_as_bytes(content.content))
                target.chmod(0o755)
            else:
                target.write_bytes(_as_bytes(content))
                target.chmod(0o644)

    def commit(
        self,
        files: Mapping[str, FileContent],
        message: str = "update",
        branch: str | None = None,
    ) -> str:
        """Write ``files``, stage everything, commit on ``branch`` (default: current); -> sha."""
        if branch is not None:
            self.checkout(branch)
        self.write(files)
        self.git("add", "--all")
        self.git("commit", "--quiet", "--allow-empty", "--no-verify", "-m", message)
        return self.head

    def push(self, branch: str | None = None, force: bool = False) -> None:
        """Push ``branch`` (default: the default branch) to the bare repository."""
        ref = branch or self.default_branch
        args = ["push", "--quiet", "origin", f"refs/heads/{ref}:refs/heads/{ref}"]
        if force:
            args.insert(1, "--force")
        self.git(*args)

    def push_tag(self, tag: str, ref: str = "HEAD") -> None:
        """Create a lightweight tag at ``ref`` and push it."""
        self.git("tag", "--force", tag, ref)
        self.git("push", "--quiet", "--force", "origin", f"refs/tags/{tag}")

    def delete_remote_branch(self, branch: str) -> None:
        self.git("push", "--quiet", "origin", f":refs/heads/{branch}")


def create_repo(
    repos_dir: Path,
    repo_path: str,
    work_dir: Path,
    clone_url: str,
    default_branch: str = DEFAULT_BRANCH,
) -> RepoHandle:
    """Create the bare repository ``{repos_dir}/{repo_path}.git`` and a working clone of it in
    ``{work_dir}/{repo_path}`` with an identity configured and ``origin`` = the bare path."""
    path = validate_repo_path(repo_path)
    bare = bare_path(repos_dir, path)
    if bare.exists():
        raise FileExistsError(f"repository already exists: {bare}")
    init_bare(bare, default_branch)
    work = Path(work_dir) / path
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    run_git(["init", "--quiet", f"--initial-branch={default_branch}", work])
    for key, value in (
        ("user.name", IDENTITY[0]),
        ("user.email", IDENTITY[1]),
        ("commit.gpgsign", "false"),
        ("core.autocrlf", "false"),
        ("core.symlinks", "true"),
    ):
        run_git(["config", key, value], cwd=work)
    run_git(["remote", "add", "origin", bare], cwd=work)
    return RepoHandle(path, bare, work, clone_url, default_branch)


# ---------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class TreeEntry:
    mode: str  # "100644", "100755", "120000", "040000", "160000"
    type: str  # "blob", "tree", "commit"
    sha: str
    size: int | None  # blobs only
    path: str  # full path from the repository root

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Person:
    name: str
    email: str
    timestamp: int
    iso: str  # with the original offset, e.g. 2024-01-02T03:04:05+01:00

    @property
    def utc_z(self) -> str:
        """GitHub's form: 2024-01-02T02:04:05Z."""
        return datetime.fromtimestamp(self.timestamp, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    @property
    def gitlab(self) -> str:
        """GitLab's form: 2024-01-02T03:04:05.000+01:00."""
        return self.iso[:19] + ".000" + self.iso[19:]


@dataclass(frozen=True)
class CommitInfo:
    sha: str
    tree: str
    parents: list[str]
    author: Person
    committer: Person
    message: str

    @property
    def title(self) -> str:
        return self.message.split("\n", 1)[0]


@dataclass(frozen=True)
class ChangedFile:
    status: str  # A, M, D, T
    path: str
    old_sha: str
    new_sha: str
    additions: int
    deletions: int
    old_mode: str = "000000"  # "000000": the file is not in that commit
    new_mode: str = "000000"


_SHA_RE = re.compile(r"^[0-9a-f]{40}$")

_STREAM_CHUNK = 256 * 1024

ARCHIVE_FORMATS = {
    "tar.gz": "tar.gz",
    "tgz": "tar.gz",
    "tar": "tar",
    "zip": "zip",
    "tar.bz2": "tar.bz2",
    "tbz": "tar.bz2",
    "tbz2": "tar.bz2",
    "tb2": "tar.bz2",
    "bz2": "tar.bz2",
}


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


class BareRepo:
    """Read-only queries on a bare repository (what the API servers need)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def _git(self, *args: str, check: bool = True) -> bytes:
        return run_git(args, cwd=self.path, check=check)

    def exists(self) -> bool:
        return (self.path / "HEAD").is_file()

    def default_branch(self) -> str:
        out = self._git("symbolic-ref", "--quiet", "HEAD", check=False).strip()
        name = _decode(out)
        return name[len("refs/heads/"):] if name.startswith("refs/heads/") else DEFAULT_BRANCH

    def is_empty(self) -> bool:
        return not self._git("for-each-ref", "--count=1", "refs/heads/").strip()

    def _resolve(self, ref: str, peel: str) -> str | None:
        if not ref or ref.startswith("-") or "\0" in ref or "\n" in ref:
            return None
        out = self._git("rev-parse", "--verify", "--quiet", f"{ref}^{{{peel}}}", check=False)
        sha = _decode(out).strip()
        return sha if _SHA_RE.match(sha) else None

    def resolve_commit(self, ref: str) -> str | None:
        """Full SHA of the commit ``ref`` names (sha, short sha, branch, tag), or None."""
        return self._resolve(ref, "commit")

    def resolve_tree(self, ref: str) -> str | None:
        return self._resolve(ref, "tree")

    def branches(self) -> list[tuple[str, str]]:
        """[(name, sha)] for all branches, sorted by name."""
        out = self._git("for-each-ref", "--format=%(refname:strip=2)%00%(objectname)",
                        "refs/heads/")
        result = []
        for line in _decode(out).splitlines():
            name, _, sha = line.partition("\0")
            result.append((name, sha))
        return sorted(result)

    def tags(self) -> list[tuple[str, str]]:
        out = self._git("for-each-ref",
                        "--format=%(refname:strip=2)%00%(objectname)%00%(*objectname)",
                        "refs/tags/")
        result = []
        for line in _decode(out).splitlines():
            name, sha, peeled = line.split("\0")
            result.append((name, peeled or sha))
        return sorted(result)

    def refs_containing(self, sha: str, kind: str = "branch") -> list[tuple[str, str]]:
        """[(type, name)] of branches and/or tags containing ``sha``; kind: branch|tag|all."""
        result: list[tuple[str, str]] = []
        for k, prefix in (("branch", "refs/heads/"), ("tag", "refs/tags/")):
            if kind not in (k, "all"):
                continue
            out = self._git("for-each-ref", f"--contains={sha}",
                            "--format=%(refname:strip=2)", prefix)
            result.extend((k, name) for name in _decode(out).splitlines() if name)
        return result

    def commit_info(self, sha: str) -> CommitInfo:
        fmt = "%H%x00%T%x00%P%x00%an%x00%ae%x00%at%x00%aI%x00%cn%x00%ce%x00%ct%x00%cI%x00%B"
        out = _decode(self._git("show", "-s", f"--format={fmt}", sha, "--"))
        parts = out.split("\0")
        h, tree, parents, an, ae, at, ai, cn, ce, ct, ci = parts[:11]
        message = "\0".join(parts[11:])
        return CommitInfo(
            sha=h,
            tree=tree,
            parents=parents.split() if parents else [],
            author=Person(an, ae, int(at), ai),
            committer=Person(cn, ce, int(ct), ci),
            message=message.rstrip("\n"),
        )

    def rev_list(self, *args: str) -> list[str]:
        return _decode(self._git("rev-list", *args, "--")).split()

    def count(self, rev_range: str) -> int:
        return int(_decode(self._git("rev-list", "--count", rev_range, "--")).strip() or 0)

    def merge_base(self, a: str, b: str) -> str | None:
        out = _decode(self._git("merge-base", a, b, check=False)).strip()
        return out if _SHA_RE.match(out) else None

    def ls_tree(self, treeish: str, path: str = "", recursive: bool = False) -> list[TreeEntry]:
        """Entries of the tree at ``path`` (or the root). Recursive listings include trees."""
        target = treeish
        if path:
            entry = self.entry(treeish, path)
            if entry is None or entry.type != "tree":
                return []
            target = entry.sha
        args = ["ls-tree", "-l", "-z", "--full-tree"]
        if recursive:
            args += ["-r", "-t"]
        out = self._git(*args, target)
        entries = []
        prefix = f"{path.strip('/')}/" if path.strip("/") else ""
        for record in out.split(b"\0"):
            if not record:
                continue
            meta, _, name = record.partition(b"\t")
            mode, typ, sha, size = meta.decode().split()
            entries.append(TreeEntry(mode, typ, sha, None if size == "-" else int(size),
                                     prefix + _decode(name)))
        return entries

    def entry(self, treeish: str, path: str) -> TreeEntry | None:
        """The tree entry at ``path`` (no trailing slash), or None."""
        path = path.strip("/")
        if not path:
            tree = self.resolve_tree(treeish)
            return TreeEntry("040000", "tree", tree, None, "") if tree else None
        out = self._git("ls-tree", "-l", "-z", "--full-tree", treeish, "--", path, check=False)
        for record in out.split(b"\0"):
            meta, _, name = record.partition(b"\t")
            if record and _decode(name) == path:
                mode, typ, sha, size = meta.decode().split()
                return TreeEntry(mode, typ, sha, None if size == "-" else int(size), path)
        return None

    def blob(self, sha: str) -> bytes:
        return self._git("cat-file", "blob", sha)

    def resolve_blob(self, sha: str) -> str | None:
        return self._resolve(sha, "blob")

    def diff(self, old: str | None, new: str) -> list[ChangedFile]:
        """Files changed from commit ``old`` (None: the empty tree) to commit ``new``."""
        base = [old, new] if old else ["--root", new]
        common = ["diff-tree", "-r", "--no-renames", "--no-commit-id", "-z"]
        raw = self._git(*common, "--raw", *base).split(b"\0")
        numstat = self._git(*common, "--numstat", *base).split(b"\0")
        counts: dict[str, tuple[int, int]] = {}
        for record in numstat:
            if record:
                added, deleted, name = record.split(b"\t", 2)
                counts[_decode(name)] = (int(added) if added != b"-" else 0,
                                         int(deleted) if deleted != b"-" else 0)
        files = []
        for meta, name in zip(raw[0::2], raw[1::2], strict=False):
            if not meta:
                continue
            old_mode, new_mode, old_sha, new_sha, status = meta.decode().lstrip(":").split()
            path = _decode(name)
            add, dele = counts.get(path, (0, 0))
            files.append(ChangedFile(status[0], path, old_sha, new_sha, add, dele,
                                     old_mode, new_mode))
        return files

    def archive_stream(self, sha: str, fmt: str, prefix: str,
                       paths: Iterable[str] = ()) -> Iterator[bytes]:
        """``archive`` as it is made, a chunk at a time, as a real server streams it.

        Raises :class:`GitError` at the end if ``git archive`` failed.
        """
        kind = ARCHIVE_FORMATS[fmt]
        git_fmt = "tar" if kind == "tar.bz2" else kind
        cmd = ["git", "archive", f"--format={git_fmt}", f"--prefix={prefix}", sha, "--", *paths]
        compressor = bz2.BZ2Compressor() if kind == "tar.bz2" else None
        with subprocess.Popen(cmd, cwd=self.path, env=git_env(None), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) as proc:
            assert proc.stdout is not None and proc.stderr is not None
            try:
                while chunk := proc.stdout.read1(_STREAM_CHUNK):
                    yield compressor.compress(chunk) if compressor else chunk
                if compressor:
                    yield compressor.flush()
            finally:
                if proc.poll() is None:
                    proc.kill()
                err = proc.stderr.read().decode(errors="replace")
            if proc.wait() != 0:
                raise GitError(f"git archive {sha} failed ({proc.returncode}): {err}")
