"""Shared machinery of the loopback test servers (git, GitHub, GitLab).

* :class:`LoopbackServer`: a ThreadingHTTPServer bound to 127.0.0.1 (port 0 by default) run in a
  thread, with token auth, a request log and counters, fault switches, repository creation,
  and the git smart-HTTP bridge (``git http-backend`` as CGI) for ``/{repo path}.git/...``.
  Subclasses add their API routes.
* :class:`Handler`: the request handler; helpers to read bodies (Content-Length or chunked),
  send JSON, bytes, redirects, chunked streams, and downloads (which honour the drop fault).
* :func:`cli_main`: the command line shared by ``python -m tests.infra.<server>``.

Fault switches are bounded: at most ``MAX_FAULT_COUNT`` requests per switch, delays of at most
``MAX_DELAY`` seconds, and stopping the server interrupts any delay.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import enum
import hashlib
import io
import json
import logging
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar, cast
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from tests.infra import gitrepos
from tests.infra.packtap import PackTap

LOG = logging.getLogger("tests.infra")

HOST = "127.0.0.1"
MAX_FAULT_COUNT = 100
MAX_DELAY = 10.0
MAX_RESET_IN = 3600
MAX_RETRY_AFTER = 60
READ_CHUNK = 64 * 1024


class Auth(enum.Enum):
    NONE = "none"  # no credentials sent
    VALID = "valid"
    INVALID = "invalid"


# Fault kinds.
RATE_LIMIT = "rate_limit"  # GitHub's primary limit: 403, X-RateLimit-Remaining: 0 and a reset
SECONDARY = "secondary_rate_limit"  # GitHub's secondary limit: 403/429, a message, maybe no wait
TOO_MANY = "too_many_requests"  # 429 with Retry-After
SERVER_ERROR = "server_error"  # 5xx
DROP = "drop"  # download: headers with Content-Length, part of the body, then close
SLOW = "slow"  # part of the body, a bounded pause, the rest
_PRE_RESPONSE = (RATE_LIMIT, SECONDARY, TOO_MANY, SERVER_ERROR)

#: GitHub's texts (docs.github.com/rest/using-the-rest-api/troubleshooting-the-rest-api;
#: the bodies as PyGithub's Requester.isPrimaryRateLimitError / isSecondaryRateLimitError
#: recognise them).
PRIMARY_MESSAGE = "API rate limit exceeded for user ID 1."
SECONDARY_MESSAGE = ("You have exceeded a secondary rate limit. Please wait a few minutes "
                     "before you try again.")
RATE_LIMIT_DOCS = ("https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
                   "#about-secondary-rate-limits")


@dataclass
class Fault:
    kind: str
    remaining: int
    pattern: re.Pattern[str] | None
    params: dict[str, Any] = field(default_factory=dict)


def _bounded_count(n: int) -> int:
    if not isinstance(n, int) or not 1 <= n <= MAX_FAULT_COUNT:
        raise ValueError(f"fault count must be 1..{MAX_FAULT_COUNT}, got {n!r}")
    return n


def _bounded(value: float, low: float, high: float, what: str) -> float:
    if not low <= value <= high:
        raise ValueError(f"{what} must be within {low}..{high}, got {value!r}")
    return value


class Faults:
    """Pending fault switches (thread-safe). Each fires for the next ``n`` matching requests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[Fault] = []
        self._fired: Counter[str] = Counter()

    def add(self, kind: str, n: int, match: str | None, **params: Any) -> None:
        fault = Fault(kind, _bounded_count(n), re.compile(match) if match else None, params)
        with self._lock:
            self._pending.append(fault)

    def take(self, kinds: Collection[str], path: str) -> Fault | None:
        """Consume one shot of the first pending fault of ``kinds`` whose pattern matches."""
        with self._lock:
            for fault in self._pending:
                if fault.kind in kinds and (fault.pattern is None or fault.pattern.search(path)):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._pending.remove(fault)
                    self._fired[fault.kind] += 1
                    return fault
        return None

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()

    def reset_fired(self) -> None:
        with self._lock:
            self._fired.clear()

    @property
    def pending(self) -> list[tuple[str, int]]:
        with self._lock:
            return [(f.kind, f.remaining) for f in self._pending]

    @property
    def fired(self) -> dict[str, int]:
        with self._lock:
            return dict(self._fired)


class ClientGone(Exception):
    """The client closed the connection while we were reading its request body."""


class Handler(BaseHTTPRequestHandler):
    """One request. The owning :class:`LoopbackServer` is ``self.app``."""

    protocol_version = "HTTP/1.1"
    server_version = "builder-test-infra/1.0"
    timeout = 120  # idle keep-alive connections; stop() closes them anyway
    server: _HTTPServer

    # Per-request state, set in _dispatch.
    raw_path: str = "/"
    route_path: str = "/"  # the path routes match (a server may strip a prefix)
    api_base: str = ""  # base URL for links in API answers
    query: dict[str, str]
    query_string: str = ""
    head_only: bool = False
    _headers_sent: bool = False
    _body_consumed: bool = False
    _chunked: bool = False
    _slow_delay: float = 0.0
    #: Set by a server that authenticated the request its own way (e.g. GitLab's JOB-TOKEN).
    credentials_override: tuple[Auth, str | None] | None = None

    @property
    def app(self) -> LoopbackServer:
        return self.server.app

    def log_message(self, format: str, *args: Any) -> None:
        LOG.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    # ------------------------------------------------------------------ dispatch
    def _dispatch(self) -> None:
        split = urlsplit(self.path)
        self.raw_path = split.path or "/"
        self.route_path = self.raw_path
        self.api_base = self.app.url
        self.query_string = split.query
        self.query = dict(parse_qsl(split.query, keep_blank_values=True))
        self.head_only = self.command == "HEAD"
        self._headers_sent = False
        self._body_consumed = False
        self._chunked = False
        self._slow_delay = 0.0
        self.credentials_override = None
        app = self.app
        encodings = [self.headers.get("Content-Encoding", "")]
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            encodings.append("chunked")
        app._record(self.command, self.raw_path, encodings)
        try:
            fault = app.faults.take(_PRE_RESPONSE, self.raw_path)
            if fault is not None:
                status, headers, body, ctype = app.fault_response(fault)
                self.send_data(status, body, ctype, headers)
            else:
                slow = app.faults.take((SLOW,), self.raw_path)
                if slow is not None:
                    self._slow_delay = float(slow.params["delay"])
                app.handle(self)
        except (ClientGone, BrokenPipeError, ConnectionResetError, ConnectionAbortedError,
                TimeoutError):
            self.close_connection = True
        except Exception:
            LOG.exception("%s %s failed", self.command, self.path)
            if self._headers_sent:
                self.close_connection = True
            else:
                with contextlib.suppress(OSError):
                    self.send_json(500, {"message": "internal error in the test server"})
        finally:
            if not self._body_consumed and self._has_body():
                self.close_connection = True

    # ------------------------------------------------------------------ request body
    def _has_body(self) -> bool:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return True
        try:
            return int(self.headers.get("Content-Length") or 0) > 0
        except ValueError:
            return True

    def iter_body(self) -> Iterator[bytes]:
        """The request body as it arrives (Content-Length or chunked; content coding kept)."""
        self._body_consumed = True
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                line = self.rfile.readline(1024)
                if not line:
                    raise ClientGone()
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError as exc:
                    raise ClientGone() from exc
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return
                yield from self._read_exact(size)
                self.rfile.readline(1024)
        else:
            yield from self._read_exact(int(self.headers.get("Content-Length") or 0))

    def _read_exact(self, length: int) -> Iterator[bytes]:
        while length > 0:
            data = self.rfile.read(min(length, READ_CHUNK))
            if not data:
                raise ClientGone()
            length -= len(data)
            yield data

    def read_body(self) -> bytes:
        return b"".join(self.iter_body())

    # ------------------------------------------------------------------ credentials
    def credentials(self) -> tuple[Auth, str | None]:
        """(state, token). Accepts ``Authorization: Basic`` (token as password, or as user with
        an empty or ``x-oauth-basic`` password), ``Bearer``/``token`` schemes, and the server's
        extra token headers (e.g. GitLab's ``PRIVATE-TOKEN``)."""
        if self.credentials_override is not None:
            return self.credentials_override
        candidate: str | None = None
        for name in self.app.token_headers:
            value = self.headers.get(name)
            if value:
                candidate = value.strip()
                break
        authz = self.headers.get("Authorization")
        if candidate is None and authz:
            scheme, _, value = authz.strip().partition(" ")
            scheme = scheme.lower()
            value = value.strip()
            if scheme in ("bearer", "token"):
                candidate = value
            elif scheme == "basic":
                try:
                    user, _, password = base64.b64decode(value).decode("utf-8").partition(":")
                except (binascii.Error, UnicodeDecodeError):
                    user, password = "", ""
                candidate = password if password not in ("", "x-oauth-basic") else user
            else:
                candidate = ""
        if candidate is None:
            return Auth.NONE, None
        if candidate and candidate in self.app.tokens:
            return Auth.VALID, candidate
        return Auth.INVALID, None

    def auth_state(self) -> Auth:
        return self.credentials()[0]

    # ------------------------------------------------------------------ responses
    def start(self, status: int, headers: Mapping[str, str], content_length: int | None) -> None:
        """Status line and headers; ``content_length`` None means a chunked body follows."""
        self.send_response(status)
        merged = {**self.app.common_headers(self), **headers}
        for key, value in merged.items():
            self.send_header(key, value)
        if content_length is None:
            self._chunked = True
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(content_length))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self._headers_sent = True

    def _write(self, data: bytes) -> None:
        if not data or self.head_only:
            return
        if self._slow_delay > 0:
            delay, self._slow_delay = self._slow_delay, 0.0
            cut = max(1, len(data) // 2)
            self.wfile.write(data[:cut])
            self.wfile.flush()
            self.app.sleep(delay)
            data = data[cut:]
        self.wfile.write(data)

    def send_data(
        self,
        status: int,
        body: bytes,
        content_type: str = "application/octet-stream",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.start(status, {"Content-Type": content_type, **(headers or {})}, len(body))
        if self._slow_delay > 0 and not body and not self.head_only:
            self.wfile.flush()
            self.app.sleep(self._slow_delay)
        self._write(body)
        self.wfile.flush()

    def send_json(self, status: int, obj: Any, headers: Mapping[str, str] | None = None) -> None:
        body = json.dumps(obj, ensure_ascii=False).encode("utf-8")
        self.send_data(status, body, "application/json; charset=utf-8", headers)

    def send_redirect(self, location: str, status: int = 302,
                      headers: Mapping[str, str] | None = None) -> None:
        self.send_data(status, b"", "text/html; charset=utf-8",
                       {"Location": location, **(headers or {})})

    def send_download(
        self,
        body: bytes,
        content_type: str,
        headers: Mapping[str, str] | None = None,
        status: int = 200,
    ) -> None:
        """Send a download (archive, raw file); honours the drop fault."""
        fault = self.app.faults.take((DROP,), self.raw_path)
        if fault is not None:
            self.send_truncated(status, body, {"Content-Type": content_type, **(headers or {})},
                                float(fault.params["fraction"]))
        else:
            self.send_data(status, body, content_type, headers)

    def send_download_stream(
        self,
        chunks: Iterable[bytes],
        content_type: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Stream a download as it is made (chunked, no Content-Length), as GitHub's codeload
        and GitLab do; honours the drop fault. A failure mid-body cuts the connection, so the
        client sees a truncated body, never a short one that looks complete."""
        merged = {"Content-Type": content_type, **(headers or {})}
        fault = self.app.faults.take((DROP,), self.raw_path)
        if fault is not None:
            self.send_truncated(200, b"".join(chunks), merged, float(fault.params["fraction"]))
            return
        pending = iter(chunks)
        first = next(pending, b"")  # a failure before any output is still a plain 500
        self.start_stream(200, merged)
        try:
            self.write_stream(first)
            for chunk in pending:
                self.write_stream(chunk)
        except Exception:
            self.close_connection = True
            self.wfile.flush()
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            raise
        self.end_stream()

    def send_truncated(self, status: int, body: bytes, headers: Mapping[str, str],
                       fraction: float) -> None:
        """Announce the full Content-Length, send ``fraction`` of the body, close the socket."""
        self.start(status, headers, len(body))
        self.close_connection = True
        cut = min(max(int(len(body) * fraction), 1), max(len(body) - 1, 0))
        self._slow_delay = 0.0
        self._write(body[:cut])
        self.wfile.flush()
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def start_stream(self, status: int, headers: Mapping[str, str]) -> None:
        self.start(status, headers, None)

    def write_stream(self, data: bytes) -> None:
        if data:
            self._write(b"%x\r\n" % len(data) + data + b"\r\n")

    def end_stream(self) -> None:
        self._write(b"0\r\n\r\n")
        self.wfile.flush()


class _HTTPServer(ThreadingHTTPServer):
    """Threads are tracked and joined on close; open connections are tracked so that stop()
    can shut them down (keep-alive clients would otherwise hold handler threads)."""

    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: LoopbackServer) -> None:
        self.app = app
        self._conn_lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        super().__init__(address, Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conn_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._conn_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._conn_lock:
            conns = list(self._connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, ClientGone)):
            return
        LOG.exception("error while serving %s", client_address)


Route = tuple[str, "re.Pattern[str]", Callable[[Handler, "re.Match[str]"], None]]

_LFS_POINTER = re.compile(rb"version https://git-lfs\.github\.com/spec/v1\n"
                          rb"oid sha256:([0-9a-f]{64})\nsize \d+\n")
_GIT_PATH = re.compile(r"^/(?P<repo>(?:[^/]+/)*?[^/]+?)\.git(?P<rest>/.*)?$")


class LoopbackServer:
    """Base of the three servers. Use as a context manager or call start()/stop()."""

    kind: ClassVar[str] = "git"
    description: ClassVar[str] = "loopback test server"
    realm: ClassVar[str] = "git"
    token_prefix: ClassVar[str] = "tok_"
    token_headers: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        repos_dir: str | Path,
        tokens: Iterable[str] | None = None,
        public: Iterable[str] = (),
        port: int = 0,
        work_dir: str | Path | None = None,
        user: str = "test-user",
    ) -> None:
        self.repos_dir = Path(repos_dir).resolve()
        self.repos_dir.mkdir(parents=True, exist_ok=True)
        token_list = [t for t in (tokens or []) if t]
        if not token_list:
            token_list = [self.token_prefix + secrets.token_hex(16)]
        self._token_list = token_list
        self.tokens: frozenset[str] = frozenset(token_list)
        self.user = user
        self._public: set[str] = {gitrepos.validate_repo_path(p) for p in public}
        self._work_dir = Path(work_dir) if work_dir else None
        self._own_work_dir = False
        self._requested_port = port
        self.faults = Faults()
        self._lock = threading.Lock()
        self._log: list[tuple[str, str]] = []
        self._counts: Counter[str] = Counter()
        self._encodings: Counter[str] = Counter()
        self._packs: list[int] = []
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        #: The wall clock of rate-limit windows and resets (tests may drive it).
        self.clock: Callable[[], float] = time.time
        #: Git LFS objects the server stores: sha256 hex -> content.
        self.lfs_objects: dict[str, bytes] = {}

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> LoopbackServer:
        if self._httpd is not None:
            return self
        self._stopping.clear()
        self._httpd = _HTTPServer((HOST, self._requested_port), self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{self.kind}-server-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.close_connections()
        httpd.server_close()  # joins handler threads
        if thread is not None:
            thread.join(timeout=10)
        self._httpd = None
        self._thread = None
        if self._own_work_dir and self._work_dir is not None:
            shutil.rmtree(self._work_dir, ignore_errors=True)

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def sleep(self, seconds: float) -> None:
        """A bounded pause that stop() interrupts."""
        self._stopping.wait(min(max(seconds, 0.0), MAX_DELAY))

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("server not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def token(self) -> str:
        """The first (primary) valid token."""
        return self._token_list[0]

    # ------------------------------------------------------------------ request log
    def _record(self, method: str, path: str, encodings: Iterable[str] = ()) -> None:
        with self._lock:
            self._log.append((method, path))
            self._counts[path] += 1
            for encoding in encodings:
                if encoding.strip():
                    self._encodings[encoding.strip().lower()] += 1

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self._log)

    @property
    def requests(self) -> list[tuple[str, str]]:
        """(method, path without query) of every request served, in order."""
        with self._lock:
            return list(self._log)

    @property
    def path_counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    @property
    def request_encodings(self) -> dict[str, int]:
        """How many request bodies arrived with each Content-Encoding (e.g. git's ``gzip``),
        and with ``chunked`` transfer encoding."""
        with self._lock:
            return dict(self._encodings)

    def count(self, pattern: str | None = None, method: str | None = None) -> int:
        """Requests whose path matches the regex ``pattern`` (search) and ``method``."""
        rx = re.compile(pattern) if pattern else None
        return sum(
            1
            for m, p in self.requests
            if (method is None or m == method) and (rx is None or rx.search(p))
        )

    def record_pack(self, objects: int) -> None:
        with self._lock:
            self._packs.append(objects)

    @property
    def packs_sent(self) -> list[int]:
        """The object count of each pack that git-upload-pack sent, in order."""
        with self._lock:
            return list(self._packs)

    def reset_counts(self) -> None:
        with self._lock:
            self._log.clear()
            self._counts.clear()
            self._encodings.clear()
            self._packs.clear()
        self.faults.reset_fired()

    def reset(self) -> None:
        """Clear pending faults, fault counters and the request log."""
        self.faults.clear()
        self.reset_counts()

    # ------------------------------------------------------------------ Git LFS
    def add_lfs_object(self, content: bytes) -> bytes:
        """Store ``content`` as a Git LFS object; return the pointer file to commit for it
        (the format of github.com/git-lfs/git-lfs/blob/main/docs/spec.md)."""
        oid = hashlib.sha256(content).hexdigest()
        with self._lock:
            self.lfs_objects[oid] = content
        return (f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\n"
                f"size {len(content)}\n").encode()

    def smudge_lfs(self, tar: bytes) -> bytes:
        """An uncompressed tar with every LFS pointer whose object is stored replaced by the
        object, as Gitaly's archive does with `gitaly-lfs-smudge` as the lfs filter."""
        with self._lock:
            objects = dict(self.lfs_objects)
        out = io.BytesIO()
        with tarfile.open(fileobj=io.BytesIO(tar), mode="r:") as source, \
                tarfile.open(fileobj=out, mode="w:", format=tarfile.PAX_FORMAT) as target:
            for member in source:
                data = source.extractfile(member) if member.isfile() else None
                content = data.read() if data is not None else None
                found = _LFS_POINTER.fullmatch(content) if content is not None else None
                if found is not None and found.group(1).decode() in objects:
                    content = objects[found.group(1).decode()]
                    member.size = len(content)
                target.addfile(member, io.BytesIO(content) if content is not None else None)
        return out.getvalue()

    # ------------------------------------------------------------------ fault switches
    def fail_next(self, n: int = 1, status: int = 500, match: str | None = None) -> None:
        """Answer the next ``n`` requests (matching the regex ``match``) with a 5xx."""
        if not 500 <= status <= 599:
            raise ValueError(f"status must be 5xx, got {status}")
        self.faults.add(SERVER_ERROR, n, match, status=status)

    def rate_limit_next(
        self,
        n: int = 1,
        reset_in: int = 60,
        match: str | None = None,
        retry_after: int | None = None,
        message: str | None = None,
    ) -> None:
        """Answer the next ``n`` requests as GitHub's primary limit does: 403,
        X-RateLimit-Remaining: 0 and X-RateLimit-Reset = now + ``reset_in`` (and Retry-After if
        given), body "API rate limit exceeded ..."."""
        _bounded(reset_in, 0, MAX_RESET_IN, "reset_in")
        if retry_after is not None:
            _bounded(retry_after, 0, MAX_RETRY_AFTER, "retry_after")
        self.faults.add(RATE_LIMIT, n, match, reset_in=int(reset_in), retry_after=retry_after,
                        message=message)

    def secondary_rate_limit_next(self, n: int = 1, match: str | None = None,
                                  retry_after: int | None = None, status: int = 403) -> None:
        """Answer the next ``n`` requests as GitHub's secondary limit does: ``status`` (403 or
        429) with the secondary-limit message, the usual X-RateLimit-* headers (requests still
        remain) and Retry-After only if given ("often no retry-after", per GitHub's docs)."""
        if status not in (403, 429):
            raise ValueError(f"status must be 403 or 429, got {status}")
        if retry_after is not None:
            _bounded(retry_after, 0, MAX_RETRY_AFTER, "retry_after")
        self.faults.add(SECONDARY, n, match, retry_after=retry_after, status=status)

    def too_many_requests_next(self, n: int = 1, retry_after: int = 1,
                               match: str | None = None) -> None:
        """Answer the next ``n`` requests with 429 and ``Retry-After``."""
        _bounded(retry_after, 0, MAX_RETRY_AFTER, "retry_after")
        self.faults.add(TOO_MANY, n, match, retry_after=int(retry_after))

    def drop_next_downloads(self, n: int = 1, fraction: float = 0.5,
                            match: str | None = None) -> None:
        """For the next ``n`` downloads (archives, raw files, git upload-pack responses), send
        the headers with the full Content-Length and ``fraction`` of the body, then close."""
        _bounded(fraction, 0.0, 1.0, "fraction")
        self.faults.add(DROP, n, match, fraction=fraction)

    def slow_next(self, n: int = 1, delay: float = 1.0, match: str | None = None) -> None:
        """For the next ``n`` requests, send part of the body, pause ``delay`` s, send the rest."""
        _bounded(delay, 0.0, MAX_DELAY, "delay")
        self.faults.add(SLOW, n, match, delay=delay)

    def clear_faults(self) -> None:
        self.faults.clear()

    @property
    def faults_fired(self) -> dict[str, int]:
        return self.faults.fired

    def fault_response(self, fault: Fault) -> tuple[int, dict[str, str], bytes, str]:
        """(status, headers, body, content type) for a pre-response fault. GitHub-like JSON."""
        ctype = "application/json; charset=utf-8"
        if fault.kind == RATE_LIMIT:
            reset = int(self.clock()) + int(fault.params["reset_in"])
            headers = {
                "X-RateLimit-Limit": "5000",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(reset),
                "X-RateLimit-Used": "5000",
                "X-RateLimit-Resource": "core",
            }
            if fault.params.get("retry_after") is not None:
                headers["Retry-After"] = str(fault.params["retry_after"])
            body = {"message": fault.params.get("message") or PRIMARY_MESSAGE,
                    "documentation_url": RATE_LIMIT_DOCS}
            return 403, headers, json.dumps(body).encode(), ctype
        if fault.kind == SECONDARY:
            headers = {}
            if fault.params.get("retry_after") is not None:
                headers["Retry-After"] = str(fault.params["retry_after"])
            body = {"message": SECONDARY_MESSAGE, "documentation_url": RATE_LIMIT_DOCS}
            return int(fault.params["status"]), headers, json.dumps(body).encode(), ctype
        if fault.kind == TOO_MANY:
            retry_after = str(fault.params["retry_after"])
            body = {"message": "Too Many Requests"}
            return 429, {"Retry-After": retry_after}, json.dumps(body).encode(), ctype
        status = int(fault.params["status"])
        body = {"message": HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_
                else "Server Error"}
        return status, {}, json.dumps(body).encode(), ctype

    # ------------------------------------------------------------------ repositories
    @property
    def work_dir(self) -> Path:
        if self._work_dir is None:
            self._work_dir = Path(tempfile.mkdtemp(prefix=f"{self.kind}-work-"))
            self._own_work_dir = True
        return self._work_dir

    def repo_dir(self, repo_path: str) -> Path:
        return gitrepos.bare_path(self.repos_dir, repo_path)

    def repo_exists(self, repo_path: str) -> bool:
        try:
            return (self.repo_dir(repo_path) / "HEAD").is_file()
        except ValueError:
            return False

    def clone_url(self, repo_path: str) -> str:
        return f"{self.url}/{gitrepos.validate_repo_path(repo_path)}.git"

    def set_public(self, repo_path: str, public: bool = True) -> None:
        path = gitrepos.validate_repo_path(repo_path)
        with self._lock:
            if public:
                self._public.add(path)
            else:
                self._public.discard(path)

    def is_public(self, repo_path: str) -> bool:
        with self._lock:
            return repo_path in self._public

    def create_repo(self, repo_path: str, private: bool = True,
                    default_branch: str = gitrepos.DEFAULT_BRANCH) -> gitrepos.RepoHandle:
        """Bare repository ``{repos_dir}/{repo_path}.git`` plus a working clone with an identity;
        commit with ``handle.commit({...})`` and publish with ``handle.push()``."""
        handle = gitrepos.create_repo(self.repos_dir, repo_path, self.work_dir,
                                      self.clone_url(repo_path), default_branch)
        self.set_public(handle.path, not private)
        self.on_repo_created(handle)
        return handle

    def on_repo_created(self, handle: gitrepos.RepoHandle) -> None:
        """Hook for subclasses (e.g. GitLab assigns a project id)."""

    # ------------------------------------------------------------------ routing
    def routes(self) -> Sequence[Route]:
        return ()

    def common_headers(self, h: Handler) -> dict[str, str]:
        """Headers added to every answer (before per-response headers)."""
        return {}

    def handle(self, h: Handler) -> None:
        if self.dispatch(h):
            return
        if self.handle_git(h):
            return
        self.not_found(h)

    def dispatch(self, h: Handler) -> bool:
        for method, rx, fn in self.routes():
            if h.command == method or (method == "GET" and h.command == "HEAD"):
                m = rx.fullmatch(h.route_path)
                if m is not None:
                    fn(h, m)
                    return True
        return False

    def not_found(self, h: Handler) -> None:
        h.send_json(404, {"message": "Not Found"})

    def unauthorized(self, h: Handler) -> None:
        """401 for git clients: they retry with credentials when they see this challenge."""
        h.send_data(401, b"Authentication required\n", "text/plain; charset=utf-8",
                    {"WWW-Authenticate": f'Basic realm="{self.realm}"'})

    # ------------------------------------------------------------------ git smart HTTP
    def handle_git(self, h: Handler) -> bool:
        """Serve ``/{repo}.git/...`` through ``git http-backend``; False if not a git path."""
        m = _GIT_PATH.match(h.route_path)
        if m is None:
            return False
        repo = unquote(m.group("repo"))
        rest = unquote(m.group("rest") or "")
        try:
            repo = gitrepos.validate_repo_path(repo)
        except ValueError:
            return False
        push = rest == "/git-receive-pack" or h.query.get("service") == "git-receive-pack"
        state = h.auth_state()
        if state is Auth.INVALID:
            self.unauthorized(h)
            return True
        if state is Auth.NONE and (push or not self.is_public(repo)):
            self.unauthorized(h)
            return True
        if not self.repo_exists(repo) or not rest:
            if state is Auth.VALID:
                h.send_data(404, b"Repository not found\n", "text/plain; charset=utf-8")
            else:
                self.unauthorized(h)
            return True
        user = self.user if state is Auth.VALID else None
        run_http_backend(h, self.repos_dir, repo, rest, user,
                         download=rest == "/git-upload-pack" and h.command == "POST")
        return True


_HOP_HEADERS = {
    "authorization", "private-token", "job-token", "content-type", "content-length",
    "transfer-encoding", "connection", "proxy-authorization", "cookie",
}


def run_http_backend(h: Handler, repos_dir: Path, repo: str, rest: str, remote_user: str | None,
                     download: bool) -> None:
    """Bridge one request to ``git http-backend`` (CGI): stream the body in, stream the answer
    out (chunked). Gzip request bodies are passed through with HTTP_CONTENT_ENCODING, which
    http-backend inflates itself."""
    env = gitrepos.git_env({
        "GIT_PROJECT_ROOT": str(repos_dir),
        "GIT_HTTP_EXPORT_ALL": "1",
        "GATEWAY_INTERFACE": "CGI/1.1",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "SERVER_SOFTWARE": h.server_version,
        "REQUEST_METHOD": h.command,
        "PATH_INFO": f"/{repo}.git{rest}",
        "QUERY_STRING": h.query_string,
        "REMOTE_ADDR": h.client_address[0],
        "CONTENT_TYPE": h.headers.get("Content-Type", ""),
    })
    chunked = "chunked" in h.headers.get("Transfer-Encoding", "").lower()
    if not chunked and h.headers.get("Content-Length"):
        env["CONTENT_LENGTH"] = h.headers["Content-Length"]
    if remote_user:
        env["REMOTE_USER"] = remote_user
    for key, value in h.headers.items():
        if key.lower() not in _HOP_HEADERS:
            env["HTTP_" + key.upper().replace("-", "_")] = value

    proc = subprocess.Popen(
        ["git", "http-backend"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    stdin, stderr_pipe = proc.stdin, proc.stderr
    stdout = cast(io.BufferedReader, proc.stdout)
    errors: list[bytes] = []
    feed_error: list[BaseException] = []

    def feed() -> None:
        try:
            for chunk in h.iter_body():
                stdin.write(chunk)
        except (BrokenPipeError, ValueError):
            pass
        except (ClientGone, OSError) as exc:
            feed_error.append(exc)
        finally:
            with contextlib.suppress(OSError):
                stdin.close()

    def drain() -> None:
        errors.append(stderr_pipe.read())

    feeder = threading.Thread(target=feed, name="git-backend-stdin", daemon=True)
    drainer = threading.Thread(target=drain, name="git-backend-stderr", daemon=True)
    h._body_consumed = True
    feeder.start()
    drainer.start()
    finished = False
    try:
        status, headers = _read_cgi_headers(stdout)
        if status is None:
            proc.wait(timeout=30)
            feeder.join(timeout=30)
            drainer.join(timeout=30)
            LOG.warning("git http-backend gave no headers: %s", b"".join(errors)[-2000:])
            h.send_json(500, {"message": "git http-backend failed"})
        else:
            fault = h.app.faults.take((DROP,), h.raw_path) if download else None
            if fault is not None:
                body = stdout.read()
                h.send_truncated(status, body, headers, float(fault.params["fraction"]))
            else:
                tap = PackTap() if download else None
                h.start_stream(status, headers)
                while data := stdout.read1(READ_CHUNK):
                    if tap is not None:
                        tap.feed(data)
                    h.write_stream(data)
                h.end_stream()
                if tap is not None and tap.objects is not None:
                    h.app.record_pack(tap.objects)
        finished = True
    finally:
        # On a client error, stop the backend at once (it may block writing to us).
        if not finished and proc.poll() is None:
            proc.kill()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        feeder.join(timeout=30)
        drainer.join(timeout=30)
        for pipe in (stdout, stderr_pipe):
            with contextlib.suppress(OSError):
                pipe.close()
        if proc.returncode != 0:
            LOG.debug("git http-backend exit %s: %s", proc.returncode, b"".join(errors)[-2000:])
        if feed_error:
            h.close_connection = True


def _read_cgi_headers(stdout: Any) -> tuple[int | None, dict[str, str]]:
    status: int | None = None
    headers: dict[str, str] = {}
    seen_any = False
    while True:
        line = stdout.readline(65536)
        if not line:
            return (status if seen_any else None), headers
        seen_any = True
        text = line.decode("latin-1").rstrip("\r\n")
        if not text:
            return (status or 200), headers
        key, _, value = text.partition(":")
        value = value.strip()
        if key.lower() == "status":
            status = int(value.split()[0])
        elif key.lower() != "content-length":
            headers[key] = value


# ---------------------------------------------------------------------------- pagination
def page_params(h: Handler, default: int, maximum: int) -> tuple[int, int]:
    try:
        page = max(int(h.query.get("page", "1") or 1), 1)
    except ValueError:
        page = 1
    try:
        per_page = int(h.query.get("per_page", str(default)) or default)
    except ValueError:
        per_page = default
    return page, min(max(per_page, 1), maximum)


def link_header(base_url: str, path: str, query: Mapping[str, str],
                links: Mapping[str, int], per_page: int) -> str:
    parts = []
    for rel, page in links.items():
        q = {**query, "page": str(page), "per_page": str(per_page)}
        parts.append(f'<{base_url}{path}?{urlencode(q)}>; rel="{rel}"')
    return ", ".join(parts)


# ---------------------------------------------------------------------------- CLI
def _split_tokens(values: Iterable[str] | None) -> list[str]:
    return [t.strip() for v in (values or []) for t in v.split(",") if t.strip()]


def cli_main(server_cls: type[LoopbackServer], argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=f"python -m tests.infra.{server_cls.kind}_server",
        description=server_cls.description,
    )
    parser.add_argument("--port", type=int, default=0,
                        help="port on 127.0.0.1 (default 0: any free port, printed on stdout)")
    parser.add_argument("--repos", type=Path, default=None,
                        help="directory of bare repositories {path}.git (default: a new temp dir)")
    parser.add_argument("--token", action="append", default=None, metavar="T",
                        help="valid token (repeatable or comma separated; default: a random "
                             "token, printed on stderr)")
    parser.add_argument("--public", action="append", default=[], metavar="REPO",
                        help="repository path readable without a token (repeatable)")
    parser.add_argument("--init", action="append", default=[], metavar="REPO",
                        help="create this repository with one commit if it is missing")
    parser.add_argument("--user", default="test-user", help="login of the token's user")
    parser.add_argument("-v", "--verbose", action="store_true", help="log requests to stderr")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        stream=sys.stderr)

    repos_dir = args.repos or Path(tempfile.mkdtemp(prefix=f"{server_cls.kind}-repos-"))
    tokens = _split_tokens(args.token)
    server = server_cls(repos_dir, tokens or None, public=args.public, port=args.port,
                        user=args.user)
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.start()
    public = {gitrepos.validate_repo_path(p) for p in args.public}
    for path in args.init:
        if not server.repo_exists(path):
            handle = server.create_repo(path, private=gitrepos.validate_repo_path(path)
                                        not in public)
            handle.commit({"README.md": f"# {handle.name}\n"}, "initial commit")
            handle.push()
    print(f"listening on {server.url}", flush=True)
    if not tokens:
        print(f"token: {server.token}", file=sys.stderr, flush=True)
    print(f"repositories: {server.repos_dir}", file=sys.stderr, flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
    return 0
