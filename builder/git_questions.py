"""The git questions behind a decision, and asking them before builder is loaded.

`builder status` spends most of its time loading Python modules. `ask_decision_early` starts
the git processes of `Checkout` first, so that git works while Python loads; `Checkout` takes
them over when it asks the same questions (see `gitcmd.ask_early`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from builder.gitcmd import ask_early, split_z

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
    return ("ls-remote", "--heads", remote)


def top_and_head(code: int, out: bytes) -> tuple[Path, str | None] | None:
    """The answer to TOP_AND_HEAD: (top level, commit or None), or None outside git."""
    lines = out.decode("utf-8", "surrogateescape").splitlines()
    if code not in (0, 1) or not lines:
        return None
    head = lines[1].strip() if code == 0 and len(lines) > 1 else None
    return Path(lines[0]).resolve(), head


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


def ask_decision_early(project_dir: Path, has_repositories: Callable[[], bool]) -> None:
    """Start the decision's git questions for `project_dir` (an absolute, resolved path).

    The remote's `ls-remote` is asked early only when the checkout has exactly one remote
    and some code repository is registered, as the decision then nearly always asks it;
    otherwise it waits for the registered repositories to name the remote.
    """
    where = str(project_dir)
    top = ask_early(TOP_AND_HEAD, where)
    ask_early(CHANGES, where)
    remotes = ask_early(REMOTES, where)
    if top is None or remotes is None or not has_repositories():
        return
    found = top_and_head(*top.wait()[:2])
    code, out, _ = remotes.wait()
    if found is None or found[1] is None or code != 0:
        return
    names = {name for name, _ in remote_urls(out)}
    if len(names) == 1:
        ask_early(heads(names.pop()), str(found[0]))
