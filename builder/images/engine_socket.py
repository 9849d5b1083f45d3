"""The engine's REST API over its unix socket, with the standard library only.

Before its container starts, `builder run` asks the engine a handful of things: the ping,
whether two images are there, then create, attach, start, wait and remove. docker-py answers
them too, but loading it (with requests and urllib3) takes longer than all of them together,
so these go over the socket directly (Docker Engine API, https://docs.docker.com/engine/api/;
attach: "hijacking" the connection, then 8-byte frame headers naming stdout or stderr).
docker-py is loaded only for what needs it: builds, loads, pulls, pushes and registry
credentials. Each request has a connection of its own, so threads may share an instance.
"""

from __future__ import annotations

import json
import socket
import struct
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote, urlencode

from builder.errors import EngineError

_FRAME = struct.Struct(">BxxxL")  # stream (1 stdout, 2 stderr), 3 bytes of 0, payload size
DEFAULT = -1.0  # a request's timeout: the instance's own


class EngineAnswer(Exception):
    """The engine answered with an error status (its JSON `message` is the text)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class EngineSocket:
    def __init__(self, path: str, timeout: float | None = None) -> None:
        self.path = path
        self.timeout = timeout
        self.version = ""  # the API version, from the ping

    def ping(self) -> str:
        """Ping the engine; return (and from now on speak) its API version."""
        status, headers, body = self._request("GET", "/_ping")
        if status != 200:
            raise EngineAnswer(status, body.decode("utf-8", "replace").strip())
        self.version = headers.get("api-version", "")
        return self.version

    def call(self, method: str, path: str, query: Mapping[str, Any] | None = None,
             body: Any = None, *, timeout: float | None = DEFAULT) -> Any:
        """One request to `/v<version><path>`; the JSON answer (None for an empty one).
        An error status is an `EngineAnswer`. `timeout` None: wait as long as it takes."""
        data = json.dumps(body).encode() if body is not None else None
        status, _, answer = self._request(method, self._url(path, query), data,
                                          timeout=timeout)
        if status >= 400:
            raise EngineAnswer(status, _message(answer))
        return json.loads(answer) if answer.strip() else None

    def attach(self, path: str) -> Iterator[tuple[bytes | None, bytes | None]]:
        """Attach to a container without a TTY: (stdout, stderr) chunks until it ends."""
        query = {"logs": 1, "stream": 1, "stdout": 1, "stderr": 1}
        sock, reader = self._open("POST", self._url(path, query), None, self.timeout,
                                  "Connection: Upgrade\r\nUpgrade: tcp\r\n")
        try:
            status, _ = _head(reader)
            if status not in (101, 200):
                raise EngineAnswer(status, "attach refused")
            sock.settimeout(None)  # the program may be quiet for as long as it likes
        except OSError as exc:
            reader.close()
            sock.close()
            raise _lost(self.path, exc) from None
        except BaseException:
            reader.close()
            sock.close()
            raise
        return _frames(reader, sock)

    def _url(self, path: str, query: Mapping[str, Any] | None = None) -> str:
        url = f"/v{self.version}{path}" if self.version else path
        return url + (f"?{urlencode(query)}" if query else "")

    def _open(self, method: str, url: str, body: bytes | None, timeout: float | None,
              extra: str = "") -> tuple[socket.socket, Any]:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(self.path)
            kind = "Content-Type: application/json\r\n" if body is not None else ""
            head = (f"{method} {url} HTTP/1.1\r\nHost: docker\r\n{extra}{kind}"
                    f"Content-Length: {len(body or b'')}\r\n\r\n")
            sock.sendall(head.encode("ascii") + (body or b""))
            return sock, sock.makefile("rb")
        except OSError as exc:
            sock.close()
            raise _lost(self.path, exc) from None

    def _request(self, method: str, url: str, body: bytes | None = None, *,
                 timeout: float | None = DEFAULT) -> tuple[int, dict[str, str], bytes]:
        sock, reader = self._open(method, url, body,
                                  self.timeout if timeout == DEFAULT else timeout,
                                  "Connection: close\r\n")
        try:
            status, headers = _head(reader)
            return status, headers, _body(reader, headers)
        except OSError as exc:
            raise _lost(self.path, exc) from None
        finally:
            reader.close()
            sock.close()


def _head(reader: Any) -> tuple[int, dict[str, str]]:
    """An HTTP answer's status and headers (names in lower case)."""
    line = reader.readline(65536).split(None, 2)
    if len(line) < 2 or not line[1].isdigit():
        raise OSError("the engine's answer is not HTTP")
    headers: dict[str, str] = {}
    while (raw := reader.readline(65536)) not in (b"\r\n", b"\n", b""):
        name, _, value = raw.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(line[1]), headers


def _body(reader: Any, headers: Mapping[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        chunks = []
        while size := int(reader.readline(65536).split(b";")[0].strip() or b"0", 16):
            chunks.append(_exactly(reader, size))
            reader.readline(65536)
        return b"".join(chunks)
    if "content-length" in headers:
        return _exactly(reader, int(headers["content-length"]))
    return bytes(reader.read())


def _exactly(reader: Any, size: int) -> bytes:
    data = reader.read(size)
    if len(data) != size:
        raise OSError("the engine's answer ended early")
    return bytes(data)


def path_part(name: str) -> str:
    """An image or container name as one part of a URL path (`host:port/name:tag` keeps its
    slashes and colons, as docker-py sends it)."""
    return quote(name, safe="/:@")


def _frames(reader: Any, sock: socket.socket) -> Iterator[tuple[bytes | None, bytes | None]]:
    try:
        while True:
            header = reader.read(_FRAME.size)
            if len(header) < _FRAME.size:
                return
            stream, size = _FRAME.unpack(header)
            data = reader.read(size)
            if stream == 2:
                yield None, data
            else:
                yield data, None
    finally:
        reader.close()
        sock.close()


def _message(answer: bytes) -> str:
    try:
        return str(json.loads(answer).get("message") or answer.decode("utf-8", "replace"))
    except (ValueError, AttributeError):
        return answer.decode("utf-8", "replace").strip()


def _lost(path: str, exc: BaseException) -> EngineError:
    detail = " ".join(str(exc).split()) or type(exc).__name__
    return EngineError(f"lost the Docker engine at unix://{path}: {detail}; is it running? "
                       "(make engine)")
