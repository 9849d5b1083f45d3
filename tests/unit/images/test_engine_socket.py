"""Reading the engine's HTTP answers (plain bytes: no engine)."""

from __future__ import annotations

import io
import struct

import pytest

from builder.images.engine_socket import _body, _frames, _head, path_part


class _Closing(io.BytesIO):
    pass


def test_heads_and_bodies_of_both_lengths() -> None:
    answer = io.BytesIO(b"HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Length: 2\r\n\r\nOK")
    status, headers = _head(answer)
    assert (status, headers["api-version"], _body(answer, headers)) == (200, "1.41", b"OK")
    chunked = io.BytesIO(b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"3\r\n{\"m\r\n2;x=y\r\n\"}\r\n0\r\n\r\n")
    status, headers = _head(chunked)
    assert (status, _body(chunked, headers)) == (404, b'{"m"}')


def test_a_cut_answer_is_an_error_not_a_short_body() -> None:
    answer = io.BytesIO(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort")
    _, headers = _head(answer)
    with pytest.raises(OSError, match="ended early"):
        _body(answer, headers)
    with pytest.raises(OSError, match="not HTTP"):
        _head(io.BytesIO(b"garbage\r\n\r\n"))


def test_attach_frames_are_split_into_stdout_and_stderr() -> None:
    def frame(stream: int, data: bytes) -> bytes:
        return struct.pack(">BxxxL", stream, len(data)) + data

    raw = _Closing(frame(1, b"out") + frame(2, b"err") + frame(1, b""))

    class _Socket:
        closed = False

        def close(self) -> None:
            self.closed = True

    sock = _Socket()
    assert list(_frames(raw, sock)) == [(b"out", None), (None, b"err"), (b"", None)]  # type: ignore[arg-type]
    assert sock.closed and raw.closed


def test_image_names_keep_their_registry_and_tag_in_the_path() -> None:
    assert path_part("127.0.0.1:5000/team/app:base-1") == "127.0.0.1:5000/team/app:base-1"
    assert path_part("app name") == "app%20name"
