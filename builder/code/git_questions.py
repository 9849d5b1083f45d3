"""The git questions behind a decision, and asking them before builder is loaded.

`builder status` spends most of its time loading Python modules. `ask_local_questions_early`
starts the git processes of `Checkout` first, so that git works while Python loads;
`Checkout` takes them over when it asks the same questions (see `gitcmd.ask_early`).
"""

from __future__ import annotations

from pathlib import Path

from builder.code.gitcmd import ask_early, git_answer, split_z

# The top level and the commit in one process: exit 0 prints both; exit 1 (no commits yet)
# prints only the top; anything else means outside git.
TOP_AND_HEAD = ("rev-parse", "--show-toplevel", "--verify", "-q", "HEAD^{commit}")
CHANGES = (
    "--no-optional-locks",
    "status",
    "--porcelain",
    "-z",
    "--no-renames",
    "--untracked-files=all",
    "--",
    ".",
)
REMOTES = ("config", "-z", "--get-regexp", r"^(remote\..*\.(url|pushurl)|url\..*\.insteadof)$")


def heads(remote: str) -> tuple[str, ...]:
    # A remote's name comes from .git/config: after --end-of-options it is never an option.
    return ("ls-remote", "--heads", "--end-of-options", remote)


def top_and_head(code: int, out: bytes) -> tuple[Path, str | None] | None:
    """The answer to TOP_AND_HEAD: (top level, commit or None), or None outside git."""
    lines = out.decode("utf-8", "surrogateescape").splitlines()
    if code not in (0, 1) or not lines:
        return None
    head = lines[1].strip() if code == 0 and len(lines) > 1 else None
    return Path(lines[0]).resolve(), head


def find_checkout(project_dir: Path) -> tuple[Path, str | None] | None:
    """The checkout containing `project_dir`: (top level, commit or None), or None outside git."""
    try:
        return top_and_head(*git_answer(TOP_AND_HEAD, project_dir))
    except (FileNotFoundError, NotADirectoryError):
        return None


def remote_urls(out: bytes) -> list[tuple[str, str]]:
    """The answer to REMOTES: (remote, URL) pairs, `url.<base>.insteadOf` applied, no repeats."""
    rewrites: list[tuple[str, str]] = []
    entries: list[tuple[str, str]] = []
    for item in split_z(out):
        key, _, value = item.partition("\n")
        section, _, rest = key.partition(".")
        if section == "url":
            rewrites.append((value, rest.rsplit(".", 1)[0]))
        else:
            entries.append((rest.rsplit(".", 1)[0], value))
    rewrites.sort(key=lambda pair: len(pair[0]), reverse=True)
    result: list[tuple[str, str]] = []
    for name, url in entries:
        for prefix, base in rewrites:
            if url.startswith(prefix):
                url = base + url[len(prefix) :]
                break
        if (name, url) not in result:
            result.append((name, url))
    return result


def ask_local_questions_early(project_dir: Path) -> None:
    """Start the decision's local git questions for `project_dir` (absolute and resolved).

    Only the checkout is asked: the remote is asked once a registered repository has
    matched it, so builder never contacts a remote that no registered repository names.
    """
    where = str(project_dir)
    for question in (TOP_AND_HEAD, CHANGES, REMOTES):
        ask_early(question, where)
