"""Hostile servers on loopback, for the failure and security tests.

- `TrickleServer` answers every GET with a 200 and then sends its body one byte at a time,
  slowly enough that no read timeout ever fires (the "1 byte/s" server of the audit).
- `StallServer` accepts connections, reads the request and never answers (a hung git or
  HTTP server).
- `CannedServer` answers each GET with the JSON given for its path (the query aside): an API
  that says whatever a test needs it to.
- `RedirectServer` answers every GET with a 302 to the same path on another origin
  (`http://localhost:<port>` instead of `http://127.0.0.1:<port>`, the way a GitLab behind a
  misconfigured proxy or a CDN hands a download to another host), and `RecordingServer`
  is that other origin: it records the headers each request brought.

All of them bind 127.0.0.1 only and run in daemon threads; `stop` ends them.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.infra.sockets import stop_accepting


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class _Base:
    handler: type[BaseHTTPRequestHandler]

    def __init__(self) -> None:
        self.httpd = _Server(("127.0.0.1", 0), self.handler)
        self.httpd.app = self  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.stopping = threading.Event()

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Any:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()


class _Quiet(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    @property
    def app(self) -> Any:
        return self.server.app  # type: ignore[attr-defined]


class _Trickle(_Quiet):
    def do_GET(self) -> None:
        app = self.app
        app.requests.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-gzip")
        self.send_header("Content-Length", str(1 << 20))
        self.end_headers()
        try:
            while not app.stopping.is_set():
                self.wfile.write(b"\x1f")
                self.wfile.flush()
                app.sent += 1
                time.sleep(app.interval)
        except OSError:
            return  # the client hung up


class TrickleServer(_Base):
    handler = _Trickle

    def __init__(self, interval: float = 0.5) -> None:
        super().__init__()
        self.interval = interval
        self.sent = 0
        self.requests: list[str] = []


class _Canned(_Quiet):
    def do_GET(self) -> None:
        app = self.app
        app.requests.append(self.path)
        status, answer = app.answers.get(self.path.split("?", 1)[0],
                                         (404, {"message": "Not Found"}))
        body = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class CannedServer(_Base):
    handler = _Canned

    def __init__(self, answers: dict[str, tuple[int, Any]]) -> None:
        super().__init__()
        self.answers = answers
        self.requests: list[str] = []


class _Redirect(_Quiet):
    def do_GET(self) -> None:
        app = self.app
        app.requests.append((self.path, dict(self.headers)))
        self.send_response(302)
        self.send_header("Location", f"http://localhost:{app.target_port}{self.path}")
        self.send_header("Content-Length", "0")
        self.end_headers()


class RedirectServer(_Base):
    handler = _Redirect

    def __init__(self, target_port: int) -> None:
        super().__init__()
        self.target_port = target_port
        self.requests: list[tuple[str, dict[str, str]]] = []


class _Record(_Quiet):
    def do_GET(self) -> None:
        self.app.requests.append((self.path, dict(self.headers)))
        body = b'{"message": "404 Not Found"}'
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class RecordingServer(_Base):
    handler = _Record

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[tuple[str, dict[str, str]]] = []


class StallServer:
    """A TCP server that reads what it is sent and never answers."""

    def __init__(self) -> None:
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.connections: list[socket.socket] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def port(self) -> int:
        return int(self.listener.getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> StallServer:
        self.thread.start()
        return self

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.connections.append(connection)
            threading.Thread(target=self._drain, args=(connection,), daemon=True).start()

    def _drain(self, connection: socket.socket) -> None:
        try:
            while connection.recv(65536):
                pass
        except OSError:
            pass

    def stop(self) -> None:
        self.stopping.set()
        stop_accepting(self.listener, self.thread)
        for connection in self.connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()
