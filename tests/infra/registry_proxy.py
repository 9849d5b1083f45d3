"""A counting proxy in front of the test registry: what a push really uploads.

The Docker engine talks to it as to any registry on loopback (127.0.0.0/8 is insecure-allowed
by default, so plain HTTP). Every request is passed to the registry at 127.0.0.1:5000 with its
Host header unchanged, so the registry's upload locations point back at the proxy (the
distribution registry builds them from the request's host when `http.host` is not set). The
proxy records each request and, for blob uploads, the bytes the engine sent and the digest
that completed the upload (distribution spec, "Pushing blobs": POST .../blobs/uploads/, then
PATCH chunks and a final PUT with `?digest=`; a cross-repository mount is a POST with
`?mount=` and uploads nothing).

    proxy = RegistryProxy(); proxy.start(); ... push to f"{proxy.address}/name:tag" ...
    proxy.uploads  -> [Upload(repository, digest, size)], proxy.reset()

Run standalone: ``python -m tests.infra.registry_proxy [--port 0]``.
"""

from __future__ import annotations

import argparse
import http.client
import re
import sys
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import NamedTuple
from urllib.parse import parse_qs, urlsplit

UPSTREAM = ("127.0.0.1", 5000)
_UPLOAD = re.compile(r"^/v2/(?P<name>.+)/blobs/uploads/(?P<session>[^/]*)$")
_MANIFEST = re.compile(r"^/v2/(?P<name>.+)/manifests/(?P<reference>[^/]+)$")
_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
        "proxy-connection", "content-length"}


class Upload(NamedTuple):
    repository: str
    digest: str
    size: int  # bytes the engine sent for this blob


class Request(NamedTuple):
    method: str
    path: str


class RegistryProxy:
    def __init__(self, upstream: tuple[str, int] = UPSTREAM, port: int = 0) -> None:
        self.upstream = upstream
        self._lock = threading.Lock()
        self._requests: list[Request] = []
        self._uploads: list[Upload] = []
        self._manifests: list[tuple[str, str]] = []
        self._sessions: dict[str, int] = {}
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> RegistryProxy:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="registry-proxy")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def __enter__(self) -> RegistryProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def uploads(self) -> list[Upload]:
        with self._lock:
            return list(self._uploads)

    @property
    def manifests(self) -> list[tuple[str, str]]:
        """(repository, reference) of every manifest pushed."""
        with self._lock:
            return list(self._manifests)

    @property
    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._requests)

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()
            self._uploads.clear()
            self._manifests.clear()

    # -------------------------------------------------------------- called by the handler
    def record(self, method: str, target: str, body: int, status: int) -> None:
        parts = urlsplit(target)
        query = parse_qs(parts.query)
        with self._lock:
            self._requests.append(Request(method, parts.path))
            upload = _UPLOAD.match(parts.path)
            if upload and method in ("PATCH", "PUT") and upload["session"]:
                session = upload["session"]
                self._sessions[session] = self._sessions.get(session, 0) + body
                if method == "PUT" and status < 300 and "digest" in query:
                    self._uploads.append(Upload(upload["name"], query["digest"][0],
                                                self._sessions.pop(session)))
            manifest = _MANIFEST.match(parts.path)
            if manifest and method == "PUT" and status < 300:
                self._manifests.append((manifest["name"], manifest["reference"]))


def _handler(proxy: RegistryProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _body(self) -> bytes:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _forward(self) -> None:
            body = self._body()
            upstream = http.client.HTTPConnection(*proxy.upstream, timeout=600)
            try:
                # Header by header: a client may repeat one (Accept), and each one counts.
                upstream.putrequest(self.command, self.path, skip_host=True,
                                    skip_accept_encoding=True)
                for key, value in self.headers.items():
                    if key.lower() not in _HOP:
                        upstream.putheader(key, value)
                upstream.putheader("Content-Length", str(len(body)))
                upstream.endheaders(body)
                response = upstream.getresponse()
                self.send_response_only(response.status, response.reason)
                for key, value in response.getheaders():
                    if key.lower() not in _HOP:
                        self.send_header(key, value)
                data = b"" if self.command == "HEAD" else response.read()
                length = response.getheader("Content-Length")
                self.send_header("Content-Length", length if self.command == "HEAD" and length
                                 else str(len(data)))
                self.end_headers()
                if data:
                    self.wfile.write(data)
                proxy.record(self.command, self.path, len(body), response.status)
            finally:
                upstream.close()

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

    return Handler


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.infra.registry_proxy",
                                     description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any)")
    args = parser.parse_args(argv)
    proxy = RegistryProxy(port=args.port).start()
    print(f"proxying {proxy.address} -> {UPSTREAM[0]}:{UPSTREAM[1]}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        proxy.stop()
        for upload in proxy.uploads:
            print(f"{upload.repository} {upload.digest} {upload.size}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
