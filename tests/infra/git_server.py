"""Loopback git smart-HTTP server: ``git http-backend`` behind token auth.

Repositories live at ``{repos}/{path}.git`` and are served at ``http://127.0.0.1:PORT/{path}.git``.
Credentials: HTTP Basic with the token as password (any user name), or
``Authorization: Bearer <token>`` (``git -c http.extraHeader="Authorization: Bearer T"``).
Missing or wrong credentials get 401 with ``WWW-Authenticate: Basic realm="git"``; repositories
marked public can be fetched without credentials, pushing always needs a token.

Run standalone: ``python -m tests.infra.git_server --repos DIR --token T [--port 0]``.
"""

from __future__ import annotations

from collections.abc import Sequence

from tests.infra.httpbase import LoopbackServer, cli_main


class GitServer(LoopbackServer):
    kind = "git"
    description = "Loopback git smart-HTTP server (git http-backend) with token auth."
    realm = "git"
    token_prefix = "gittok_"


def main(argv: Sequence[str] | None = None) -> int:
    return cli_main(GitServer, argv)


if __name__ == "__main__":
    raise SystemExit(main())
