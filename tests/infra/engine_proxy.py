"""A counting proxy in front of the Docker engine's unix socket: what a client asks it.

Point a client at it with `DOCKER_HOST=unix://<proxy.path>`. Every connection is passed to
the engine's socket; the client's side is read as HTTP/1.1 requests (head, then a body of
`Content-Length` bytes or chunks), each recorded as (method, path with query). After a
request that upgrades the connection (`docker attach`: `Upgrade: tcp`), the bytes flow
unread in both directions, as the engine's hijacked stream does.

    with EngineProxy(tmp_path / "engine.sock") as proxy: ...; proxy.requests
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from pathlib import Path
from typing import Any, NamedTuple

from tests.infra.sockets import stop_accepting

ENGINE_SOCKET = "/var/run/docker.sock"


class Request(NamedTuple):
    method: str
    target: str  # path and query, as sent


class EngineProxy:
    def __init__(self, path: Path, engine: str = ENGINE_SOCKET) -> None:
        self.path = path
        self.engine = engine
        self._lock = threading.Lock()
        self._requests: list[Request] = []
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()

    @property
    def address(self) -> str:
        return f"unix://{self.path}"

    @property
    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._requests)

    def __enter__(self) -> EngineProxy:
        self._server.bind(str(self.path))
        self._server.listen(16)
        self._spawn(self._accept)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        stop_accepting(self._server, self._threads[0])  # the accept loop, spawned first
        for thread in list(self._threads):
            thread.join(timeout=10)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def _spawn(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            engine = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            engine.connect(self.engine)
            self._spawn(self._requests_from, client, engine)
            self._spawn(_pump, engine, client)

    def _requests_from(self, client: socket.socket, engine: socket.socket) -> None:
        reader = client.makefile("rb")
        try:
            while True:
                head = _read_head(reader)
                if head is None:
                    break
                first = head.split(b"\r\n", 1)[0].decode("latin-1").split()
                headers = _headers(head)
                with self._lock:
                    self._requests.append(Request(first[0], first[1]))
                engine.sendall(head)
                if headers.get("upgrade"):
                    _pump_reader(reader, engine)
                    break
                _forward_body(reader, engine, headers)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                engine.shutdown(socket.SHUT_WR)


def _read_head(reader: Any) -> bytes | None:
    lines = []
    while True:
        line = reader.readline(65536)
        if not line:
            return None
        lines.append(line)
        if line in (b"\r\n", b"\n"):
            return b"".join(lines)


def _headers(head: bytes) -> dict[str, str]:
    found = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.decode("latin-1").partition(":")
        if name:
            found[name.strip().lower()] = value.strip()
    return found


def _forward_body(reader: Any, engine: socket.socket, headers: dict[str, str]) -> None:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            size_line = reader.readline(65536)
            engine.sendall(size_line)
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            engine.sendall(reader.read(size + 2))  # the chunk and its CRLF
            if size == 0:
                return
    length = int(headers.get("content-length") or 0)
    while length > 0:
        data = reader.read(min(length, 1 << 16))
        if not data:
            return
        engine.sendall(data)
        length -= len(data)


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(1 << 16):
            target.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)


def _pump_reader(reader: Any, target: socket.socket) -> None:
    while data := reader.read1(1 << 16):
        target.sendall(data)
