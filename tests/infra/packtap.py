"""Reading the pack in a `git-upload-pack` answer as it streams by: how many objects it holds.

An upload-pack answer is a sequence of pkt-lines (gitprotocol-common: four hex digits of
length, the length counting themselves; `0000` flush, `0001` delimiter, `0002` response end).
Protocol v2 sends a `packfile` section whose lines carry the pack on side-band 1 (the first
byte of the payload); protocol v0 with side-band does the same after its ACK/NAK lines
(gitprotocol-pack, gitprotocol-v2). A pack starts with `PACK`, a version and the number of
objects, each four bytes, network order (gitformat-pack).
"""

from __future__ import annotations

_SPECIAL = (0, 1, 2)


class PackTap:
    """Feed it the answer's bytes in order; `objects` is the pack's object count (or None)."""

    def __init__(self) -> None:
        self._buffer = b""
        self._pack = b""
        self.objects: int | None = None

    def feed(self, data: bytes) -> None:
        if self.objects is not None:
            return
        self._buffer += data
        while len(self._buffer) >= 4:
            try:
                length = int(self._buffer[:4], 16)
            except ValueError:
                self.objects = None
                self._buffer = b""
                return
            if length in _SPECIAL:
                self._buffer = self._buffer[4:]
                continue
            if len(self._buffer) < length:
                return
            payload, self._buffer = self._buffer[4:length], self._buffer[length:]
            if payload[:1] == b"\x01":
                self._pack += payload[1:]
                if len(self._pack) >= 12:
                    if self._pack.startswith(b"PACK"):
                        self.objects = int.from_bytes(self._pack[8:12], "big")
                    self._buffer = b""
                    return
