"""Remote URL parsing and matching across the forms git accepts.

Forms: `https://[user[:token]@]host[:port]/path[.git]`, `http://...`, `ssh://[user@]host[:port]/path`,
scp-like `[user@]host:path`, `git://host[:port]/path`, `file:///path` and local paths.
"""

from __future__ import annotations

import os
import re
from typing import NamedTuple
from urllib.parse import unquote, urlsplit

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.\-]*)://")
_SCP = re.compile(r"^(?:(?P<user>[^@/]+)@)?(?P<host>\[[^\]]+\]|[^:/]+):(?P<path>.*)$")
WEB_SCHEMES = ("http", "https")


class RemoteURL(NamedTuple):
    """A remote location, normalised: lower-case host, path without slashes or `.git`."""

    scheme: str  # http, https, ssh, git, file
    host: str  # "" for file
    port: int | None
    path: str  # for file: the absolute, real path

    @property
    def is_local(self) -> bool:
        return self.scheme == "file"

    def same_place(self, other: RemoteURL, *, case_sensitive_path: bool = True) -> bool:
        """Whether both name the same repository, whatever the transport."""
        if self.is_local or other.is_local:
            return self.is_local and other.is_local and self.path == other.path
        if self.host != other.host:
            return False
        if (
            self.scheme in WEB_SCHEMES
            and other.scheme in WEB_SCHEMES
            and self.port
            and other.port
            and self.port != other.port
        ):
            return False
        if case_sensitive_path:
            return self.path == other.path
        return self.path.lower() == other.path.lower()


def parse_remote_url(url: str, *, base_dir: str | None = None) -> RemoteURL | None:
    """Parse a git remote URL; None when it is not one we understand."""
    url = url.strip()
    if not url:
        return None
    scheme_match = _SCHEME.match(url)
    if scheme_match:
        scheme = scheme_match.group(1).lower()
        if scheme == "file":
            return RemoteURL("file", "", None, _real(unquote(urlsplit(url).path)))
        if scheme.startswith("git+") or scheme.endswith("+git"):
            scheme = "ssh"
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            return None
        host = (parts.hostname or "").lower()
        if not host:
            return None
        if scheme in WEB_SCHEMES and port is None:
            port = 443 if scheme == "https" else 80
        return RemoteURL(scheme, host, port, _clean_path(unquote(parts.path)))
    scp = _SCP.match(url)
    # `C:\x` and `./a:b` are local paths, not scp-like remotes (git's own rule: no slash
    # before the first colon).
    if (
        scp
        and not os.path.isabs(url)
        and len(scp.group("host")) > 1
        and "/" not in url.split(":", 1)[0]
    ):
        host = scp.group("host").strip("[]").lower()
        return RemoteURL("ssh", host, None, _clean_path(scp.group("path")))
    path = os.path.expanduser(url)
    if not os.path.isabs(path) and base_dir:
        path = os.path.join(base_dir, path)
    return RemoteURL("file", "", None, _real(path))


def parse_web_url(url: str) -> tuple[str, int, str]:
    """(host, port, path prefix) of a service's web URL such as https://gitlab.example.com/git."""
    parsed = parse_remote_url(url)
    if parsed is None or parsed.scheme not in WEB_SCHEMES:
        raise ValueError(f"{url!r} is not an http(s) URL")
    assert parsed.port is not None
    return parsed.host, parsed.port, parsed.path


def path_on_server(url: str, web_url: str,
                   host_aliases: frozenset[str] = frozenset()) -> str | None:
    """The repository path of remote `url` if the service at `web_url` serves it, else None.

    http(s) remotes must use the service's port and may carry its path prefix (a self-hosted
    instance under a relative URL root); ssh and git remotes are matched by host alone.
    """
    remote = parse_remote_url(url)
    if remote is None or remote.is_local:
        return None
    host, port, prefix = parse_web_url(web_url)
    if remote.host != host and remote.host not in host_aliases:
        return None
    path = remote.path
    if remote.scheme in WEB_SCHEMES:
        if remote.port != port:
            return None
        if prefix and path.lower().startswith(prefix.lower() + "/"):
            path = path[len(prefix) + 1:]
    return path


def strip_credentials(url: str) -> str:
    """The URL without any `user:password@` part, for display and matching."""
    match = _SCHEME.match(url)
    if not match:
        return url
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    return parts._replace(netloc=netloc).geturl()


def _clean_path(path: str) -> str:
    path = path.strip("/")
    while path.endswith("/"):
        path = path[:-1]
    if path.endswith(".git"):
        path = path[: -len(".git")]
    return path.strip("/")


def _real(path: str) -> str:
    real = os.path.realpath(path)
    if real.endswith("/.git") and os.path.isdir(real):
        real = real[: -len("/.git")]
    elif real.endswith(".git") and not os.path.exists(real) and os.path.isdir(real[:-4]):
        real = real[:-4]
    return real.rstrip("/") or "/"


#: Transports builder hands to git. Anything else (`ext::`, `fd::`, a remote helper) could
#: run a command or read a descriptor of builder's process.
GIT_SCHEMES = ("http", "https", "ssh", "git", "file", "git+ssh", "ssh+git")
_HELPER = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*::")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def has_control_character(value: str) -> bool:
    """A newline, a tab or another control character (never part of a name or URL)."""
    return bool(_CONTROL.search(value))


def clone_url_problem(url: str) -> str | None:
    """Why git must not be given `url`, or None. The reason never repeats a credential."""
    if has_control_character(url):
        return "contains a control character (a newline, a tab, ...)"
    if _HELPER.match(url):
        return ("uses a git remote helper (`transport::address`, such as ext:: or fd::), "
                "which can run commands; use an https, ssh, git or file URL or a path")
    scheme = _SCHEME.match(url)
    if scheme:
        name = scheme.group(1).lower()
        if name not in GIT_SCHEMES:
            return f"uses the scheme {name!r}; use one of {', '.join(GIT_SCHEMES)} or a path"
        parts = urlsplit(url)
        if name in WEB_SCHEMES and "@" in parts.netloc:
            return ("contains a user name or token before the host: pass the user with "
                    "--username and the token with --token, which goes to the secret store")
        if name != "file" and _starts_like_an_option(parts.netloc.rpartition("@")[2],
                                                     parts.username or ""):
            return "has a user or host that starts with '-' (it would reach ssh as an option)"
        return None
    if url.startswith("-"):
        return "starts with '-' (git would read it as an option)"
    scp = _SCP.match(url)
    if scp and "/" not in url.split(":", 1)[0] and _starts_like_an_option(
            scp.group("host"), scp.group("user") or ""):
        return "has a user or host that starts with '-' (it would reach ssh as an option)"
    return None


def web_url_problem(url: str) -> str | None:
    """Why `url` cannot be a GitHub or GitLab instance's web or API URL, or None."""
    if has_control_character(url):
        return "contains a control character (a newline, a tab, ...)"
    try:
        parse_web_url(url)
    except ValueError:
        return "must be an http(s) URL such as https://github.example.com"
    parts = urlsplit(url)
    if "@" in parts.netloc:
        return ("contains a user name or token before the host: pass the token with --token, "
                "which goes to the secret store")
    if parts.query or parts.fragment:
        return "must not have a query or a fragment"
    return None


def _starts_like_an_option(*values: str) -> bool:
    return any(value.strip("[").startswith("-") for value in values)
