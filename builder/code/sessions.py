"""An HTTP session whose credentials never follow a redirect to another origin.

requests drops only `Authorization` when a redirect leaves the host
(`SessionRedirectMixin.rebuild_auth`); GitLab's `PRIVATE-TOKEN` and `JOB-TOKEN` headers, which
python-gitlab sets, would go along to whatever host the `Location` names. This session drops
every credential header in the same cases requests drops `Authorization` (another host, or
a changed scheme or port other than http:80 -> https:443), so a redirect can still be
followed, without the token. Its answers are also bounded by the running download's deadline
(`builder.code.deadline`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import requests

#: Headers that carry a credential (matched case-insensitively, as requests stores them).
CREDENTIAL_HEADERS = ("Authorization", "PRIVATE-TOKEN", "JOB-TOKEN", "Proxy-Authorization",
                      "Cookie")


def origin_bound_session() -> requests.Session:
    """A `requests.Session` that strips credential headers on a cross-origin redirect."""
    import requests

    class OriginBoundSession(requests.Session):
        def rebuild_auth(self, prepared_request: requests.PreparedRequest,
                         response: requests.Response) -> None:
            previous = response.request.url or ""
            if self.should_strip_auth(previous, prepared_request.url or ""):
                for name in CREDENTIAL_HEADERS:
                    prepared_request.headers.pop(name, None)
            super().rebuild_auth(prepared_request, response)

    from builder.code.deadline import register_response

    session = OriginBoundSession()
    session.hooks["response"].append(register_response)  # bounded by the download's deadline
    return session
