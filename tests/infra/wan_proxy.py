"""A wide-area network on loopback: a user-space TCP proxy with delay and a bandwidth limit.

This machine's kernel has no netem, so the WAN is emulated here, in front of the test
servers (registry, GitHub, GitLab, git). A :class:`Wan` is one link with a profile: one-way
delay (half the round trip) in each direction, a bandwidth limit per direction that all its
connections share (the laptop's uplink, the node's downlink), and the round trips a new
connection costs before its first byte arrives (TCP's handshake, plus TLS 1.3's for HTTPS:
the loopback servers speak plain HTTP, the real ones do not). Each :class:`Proxy` of the
link listens on 127.0.0.1 and forwards to one loopback server.

Every byte is timed like this: a chunk read from one side is serialised onto its direction of
the link after what is already queued there (``bytes * 8 / rate`` seconds), then delivered
to the other side ``delay`` seconds later. A connection's first bytes are not delivered
before its handshake would have ended. A bounded window per direction of a connection
(twice the bandwidth-delay product) makes a fast sender wait, as TCP's window does. Not
modelled: loss, TCP slow start, jitter.

Counted, per proxy and for the whole link: connections, bytes up (client to server) and down,
and the exchanges: an exchange on a connection is one turn of the client talking, then the
server answering (an HTTP request and its response). ``sequential_round_trips`` is the
largest number of round trips that had to happen one after another: the longest chain of
exchanges in which each started after the previous had ended (exchanges that overlap ran in
parallel), a connection's first exchange counting its handshake's round trips too.

    python -m tests.infra.wan_proxy --forward 5001=5000 --rtt 40 --up 20 --down 100

    with Wan(WanProfile(rtt=0.04)) as wan:
        registry = wan.proxy(5000, "registry")      # listens on registry.port
        ...
        wan.stats().sequential_round_trips
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import signal
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

HOST = "127.0.0.1"
CHUNK = 64 * 1024
MIN_WINDOW = 256 * 1024
JOIN_TIMEOUT = 5.0
_EOF = b""


@dataclass(frozen=True)
class WanProfile:
    """A link's shape. Rates in bits per second; `up` is client to server."""

    rtt: float = 0.040
    up_bps: float = 20e6
    down_bps: float = 100e6
    handshake_rtts: int = 2  # TCP, then TLS 1.3, before a connection's first request

    def __post_init__(self) -> None:
        if not 0 <= self.rtt <= 10:
            raise ValueError(f"rtt must be within 0..10 s, got {self.rtt!r}")
        if self.up_bps <= 0 or self.down_bps <= 0:
            raise ValueError("rates must be positive")
        if not 0 <= self.handshake_rtts <= 10:
            raise ValueError(f"handshake_rtts must be within 0..10, got {self.handshake_rtts!r}")

    @property
    def delay(self) -> float:
        """One-way delay, each direction."""
        return self.rtt / 2

    def describe(self) -> str:
        return (f"{self.rtt * 1000:g} ms round trip, {self.up_bps / 1e6:g} Mbit/s up, "
                f"{self.down_bps / 1e6:g} Mbit/s down")


@dataclass(frozen=True)
class Exchange:
    """One turn on a connection: the client's first byte arrived at `start`, the server's last
    answer byte of the turn reached the client at `end` (perf_counter seconds)."""

    start: float
    end: float
    round_trips: int  # 1, plus the handshake's for a connection's first exchange


@dataclass(frozen=True)
class Stats:
    connections: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    exchanges: tuple[Exchange, ...] = ()

    @property
    def sequential_round_trips(self) -> int:
        return sequential_round_trips(self.exchanges)

    def __add__(self, other: Stats) -> Stats:
        return Stats(self.connections + other.connections, self.bytes_up + other.bytes_up,
                     self.bytes_down + other.bytes_down,
                     tuple(sorted((*self.exchanges, *other.exchanges), key=lambda e: e.start)))

    def metrics(self, prefix: str = "") -> dict[str, float]:
        """For the bench's per-run metrics."""
        return {
            f"{prefix}up": float(self.bytes_up),
            f"{prefix}down": float(self.bytes_down),
            f"{prefix}round_trips": float(self.sequential_round_trips),
            f"{prefix}connections": float(self.connections),
        }


def sequential_round_trips(exchanges: Iterable[Exchange]) -> int:
    """The heaviest chain of pairwise non-overlapping exchanges (weighted interval scheduling):
    the round trips that could not overlap, whatever ran in parallel beside them."""
    ordered = sorted((e for e in exchanges if e.end >= e.start), key=lambda e: e.end)
    ends = [e.end for e in ordered]
    best = [0] * (len(ordered) + 1)
    for index, exchange in enumerate(ordered):
        before = bisect.bisect_left(ends, exchange.start, 0, index)  # ended before it started
        best[index + 1] = max(best[index], best[before] + exchange.round_trips)
    return best[-1]


class _Direction:
    """One direction of the link: a FIFO of the given rate that all connections share."""

    def __init__(self, bps: float) -> None:
        self.bps = bps
        self._lock = threading.Lock()
        self._busy_until = 0.0

    def serialise(self, size: int, now: float) -> float:
        """When the last bit of `size` bytes, queued at `now`, has left."""
        with self._lock:
            start = max(now, self._busy_until)
            self._busy_until = start + size * 8 / self.bps
            return self._busy_until


class _Pipe:
    """Bytes of one direction of one connection: read, timed, queued, written when due."""

    def __init__(self, connection: _Connection, source: socket.socket, sink: socket.socket,
                 direction: _Direction, upstream: bool) -> None:
        self.connection = connection
        self.source = source
        self.sink = sink
        self.direction = direction
        self.upstream = upstream
        profile = connection.proxy.wan.profile
        self.window = max(MIN_WINDOW, int(2 * direction.bps / 8 * profile.rtt))
        self._queue: deque[tuple[float, bytes]] = deque()
        self._queued = 0
        self._cond = threading.Condition()
        self.threads = [
            threading.Thread(target=self._read, daemon=True,
                             name=f"wan-{'up' if upstream else 'down'}-read"),
            threading.Thread(target=self._write, daemon=True,
                             name=f"wan-{'up' if upstream else 'down'}-write"),
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def _read(self) -> None:
        connection = self.connection
        stopping = connection.proxy.wan.stopping
        delay = connection.proxy.wan.profile.delay
        while True:
            try:
                data = self.source.recv(CHUNK)
            except OSError:
                data = _EOF
            now = time.perf_counter()
            if data and self.upstream:
                connection.client_spoke(now)
            due = (max(self.direction.serialise(len(data), now), connection.opened_by)
                   + delay) if data else now
            with self._cond:
                while data and self._queued >= self.window and not stopping.is_set():
                    self._cond.wait(0.05)
                self._queue.append((due, data))
                self._queued += len(data)
                self._cond.notify_all()
            if not data or stopping.is_set():
                return

    def _write(self) -> None:
        connection = self.connection
        stopping = connection.proxy.wan.stopping
        while True:
            with self._cond:
                while not self._queue and not stopping.is_set():
                    self._cond.wait(0.05)
                if stopping.is_set():
                    break
                due, data = self._queue[0]
            wait = due - time.perf_counter()
            if wait > 0 and stopping.wait(wait):
                break
            with self._cond:
                self._queue.popleft()
                self._queued -= len(data)
                self._cond.notify_all()
            if not data:
                with contextlib.suppress(OSError):
                    self.sink.shutdown(socket.SHUT_WR)
                break
            # Counted before it is handed over, so that a peer that has read it sees it counted.
            connection.delivered(len(data), self.upstream, time.perf_counter())
            try:
                self.sink.sendall(data)
            except OSError:
                connection.delivered(-len(data), self.upstream, None)
                break
        connection.pipe_done()


class _Connection:
    def __init__(self, proxy: Proxy, client: socket.socket, server: socket.socket,
                 accepted: float) -> None:
        self.proxy = proxy
        self.client = client
        self.server = server
        profile = proxy.wan.profile
        # The client's connect() returned at once on loopback; its bytes wait out the
        # handshake a real connection would have needed first.
        self.opened_by = accepted + profile.handshake_rtts * profile.rtt
        self._handshake = profile.handshake_rtts
        self._lock = threading.Lock()
        self._turn_start: float | None = None
        self._turn_end: float | None = None
        self._answered = True
        self._first = True
        self._open_pipes = 2
        self.pipes = [
            _Pipe(self, client, server, proxy.wan.up, upstream=True),
            _Pipe(self, server, client, proxy.wan.down, upstream=False),
        ]

    def client_spoke(self, now: float) -> None:
        with self._lock:
            if self._answered:
                self._close_turn()
                self._turn_start, self._turn_end, self._answered = now, None, False

    def delivered(self, size: int, upstream: bool, now: float | None) -> None:
        with self._lock:
            if upstream:
                self.proxy._count(up=size)
            else:
                self.proxy._count(down=size)
                if self._turn_start is not None and now is not None:
                    self._turn_end, self._answered = now, True

    def current(self) -> Exchange | None:
        """The turn in progress, if the server has begun to answer it."""
        with self._lock:
            if self._turn_start is None or self._turn_end is None:
                return None
            return Exchange(self._turn_start, self._turn_end,
                            1 + (self._handshake if self._first else 0))

    def _close_turn(self) -> None:
        if self._turn_start is None or self._turn_end is None:
            return
        extra = self._handshake if self._first else 0
        self._first = False
        self.proxy._exchange(Exchange(self._turn_start, self._turn_end, 1 + extra))
        self._turn_start = self._turn_end = None

    def pipe_done(self) -> None:
        with self._lock:
            self._open_pipes -= 1
            last = self._open_pipes == 0
            if last:
                self._close_turn()
        if last:
            for sock in (self.client, self.server):
                with contextlib.suppress(OSError):
                    sock.close()
            self.proxy._forget(self)

    def abort(self) -> None:
        for sock in (self.client, self.server):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class Proxy:
    """One forwarded port of a :class:`Wan`: 127.0.0.1:`port` -> 127.0.0.1:`upstream_port`."""

    def __init__(self, wan: Wan, upstream_port: int, name: str, port: int = 0) -> None:
        self.wan = wan
        self.name = name
        self.upstream = (HOST, upstream_port)
        self._listener = socket.create_server((HOST, port), reuse_port=False)
        self._listener.settimeout(0.1)
        self.port = int(self._listener.getsockname()[1])
        self._lock = threading.Lock()
        self._connections: set[_Connection] = set()
        self._since = 0.0
        self._accepted = 0
        self._up = 0
        self._down = 0
        self._exchanges: list[Exchange] = []
        self._thread = threading.Thread(target=self._accept, daemon=True,
                                        name=f"wan-accept-{self.port}")
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def stats(self) -> Stats:
        """The counts since the last reset; a turn still open counts as far as it got."""
        with self._lock:
            done = list(self._exchanges)
            live = list(self._connections)
            counts = (self._accepted, self._up, self._down)
        current = [exchange for c in live if (exchange := c.current()) is not None]
        exchanges = tuple(sorted((e for e in (*done, *current) if e.start >= self._since),
                                 key=lambda e: e.start))
        return Stats(*counts, exchanges)

    def reset(self) -> None:
        with self._lock:
            self._since = time.perf_counter()
            self._accepted = self._up = self._down = 0
            self._exchanges.clear()

    def _accept(self) -> None:
        stopping = self.wan.stopping
        while not stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            accepted = time.perf_counter()
            client.settimeout(None)
            try:
                server = socket.create_connection(self.upstream, timeout=10)
                server.settimeout(None)
            except OSError:
                with contextlib.suppress(OSError):
                    client.close()
                continue
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connection = _Connection(self, client, server, accepted)
            with self._lock:
                self._connections.add(connection)
                self._accepted += 1
            for pipe in connection.pipes:
                pipe.start()

    def _count(self, *, up: int = 0, down: int = 0) -> None:
        with self._lock:
            self._up += up
            self._down += down

    def _exchange(self, exchange: Exchange) -> None:
        with self._lock:
            self._exchanges.append(exchange)

    def _forget(self, connection: _Connection) -> None:
        with self._lock:
            self._connections.discard(connection)

    def close(self) -> None:
        # The accept loop ends (it polls `stopping`) before the listener is closed: a thread
        # still in accept() on a closed descriptor could take a later socket's connections.
        self._thread.join(JOIN_TIMEOUT)
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            connection.abort()
        for connection in connections:
            for pipe in connection.pipes:
                for thread in pipe.threads:
                    thread.join(JOIN_TIMEOUT)


@dataclass
class Wan:
    """A link with a profile and the proxies on it. Use as a context manager, or `close()`."""

    profile: WanProfile = field(default_factory=WanProfile)

    def __post_init__(self) -> None:
        self.stopping = threading.Event()
        self.up = _Direction(self.profile.up_bps)
        self.down = _Direction(self.profile.down_bps)
        self.proxies: dict[str, Proxy] = {}

    def proxy(self, upstream_port: int, name: str | None = None, port: int = 0) -> Proxy:
        """A proxy on this link to 127.0.0.1:`upstream_port` (only loopback is reachable)."""
        name = name or f"port-{upstream_port}"
        if name in self.proxies:
            raise ValueError(f"the link already has a proxy named {name!r}")
        proxy = Proxy(self, upstream_port, name, port)
        self.proxies[name] = proxy
        return proxy

    def stats(self, names: Sequence[str] | None = None) -> Stats:
        """The link's counts (or those of the named proxies), summed."""
        total = Stats()
        for name, proxy in self.proxies.items():
            if names is None or name in names:
                total = total + proxy.stats()
        return total

    def reset(self) -> None:
        for proxy in self.proxies.values():
            proxy.reset()

    def close(self) -> None:
        self.stopping.set()
        for proxy in self.proxies.values():
            proxy.close()

    def __enter__(self) -> Wan:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------------- CLI


def _forward(text: str) -> tuple[int, int]:
    listen, sep, upstream = text.partition("=")
    try:
        if not sep:
            raise ValueError
        return int(listen), int(upstream.rsplit(":", 1)[-1])
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected LISTEN_PORT=UPSTREAM_PORT (both on 127.0.0.1)") from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.infra.wan_proxy",
        description="A WAN on loopback: forward 127.0.0.1 ports with a delay and a bandwidth "
                    "limit in each direction; print the counts on Ctrl-C or SIGTERM.",
    )
    parser.add_argument("--forward", action="append", type=_forward, required=True,
                        metavar="LISTEN=UPSTREAM",
                        help="listen on 127.0.0.1:LISTEN (0: any free port), forward to "
                             "127.0.0.1:UPSTREAM (repeatable)")
    parser.add_argument("--rtt", type=float, default=40.0, help="round trip in ms (40)")
    parser.add_argument("--up", type=float, default=20.0,
                        help="client to server, Mbit/s (20)")
    parser.add_argument("--down", type=float, default=100.0,
                        help="server to client, Mbit/s (100)")
    parser.add_argument("--handshake-rtts", type=int, default=2,
                        help="round trips before a new connection's first byte (2: TCP + TLS)")
    args = parser.parse_args(argv)
    try:
        profile = WanProfile(args.rtt / 1000, args.up * 1e6, args.down * 1e6, args.handshake_rtts)
    except ValueError as exc:
        parser.error(str(exc))
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with Wan(profile) as wan:
        for listen, upstream in args.forward:
            proxy = wan.proxy(upstream, port=listen)
            print(f"{proxy.address} -> {HOST}:{upstream} ({profile.describe()})", flush=True)
        while not stop.wait(0.5):
            pass
        for name, proxy in wan.proxies.items():
            s = proxy.stats()
            print(f"{name}: {s.connections} connections, {s.bytes_up} bytes up, "
                  f"{s.bytes_down} bytes down, {len(s.exchanges)} exchanges, "
                  f"{s.sequential_round_trips} sequential round trips", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
