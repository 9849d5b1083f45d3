"""The WAN emulator (tests/infra/wan_proxy.py): its delay, rates and counts, measured.

A plain TCP server on 127.0.0.1 answers three commands: an echo, `SINK n` (read n bytes,
answer `done`) and `GIVE n` (send n bytes). Delay and rates must come within 10 % of the
setting, and the byte counts must be exact. Each timing is the best of a few tries: the
proxy only ever adds time, so a slow outlier is this shared machine, not the link.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from builder.repositories.github import GitHubCodeRepository
from tests.infra.github_server import GitHubServer
from tests.infra.server_fixtures import behind_wan
from tests.infra.sockets import stop_accepting
from tests.infra.wan_proxy import Exchange, Wan, WanProfile, sequential_round_trips

ROOT = Path(__file__).resolve().parents[3]
TOLERANCE = 0.10


class Peer:
    """The server behind the proxy."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    @staticmethod
    def _handle(conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with conn:
            buffer = b""
            while data := conn.recv(1 << 16):
                buffer += data
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    command, _, argument = line.partition(b" ")
                    if command == b"SINK":
                        remaining = int(argument) - len(buffer)
                        buffer = b""
                        while remaining > 0:
                            chunk = conn.recv(1 << 16)
                            if not chunk:
                                return
                            remaining -= len(chunk)
                        conn.sendall(b"done\n")
                    elif command == b"GIVE":
                        conn.sendall(b"x" * int(argument))
                    else:
                        conn.sendall(line + b"\n")

    def close(self) -> None:
        stop_accepting(self.listener, self.thread)


@pytest.fixture
def peer() -> Iterator[Peer]:
    server = Peer()
    yield server
    server.close()


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def receive(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(min(1 << 20, size - len(data)))
        if not chunk:
            raise AssertionError(f"connection closed after {len(data)} of {size} bytes")
        data += chunk
    return data


def ping(sock: socket.socket) -> None:
    sock.sendall(b"ping\n")
    assert receive(sock, 5) == b"ping\n"


def best(tries: int, measure: Callable[[], float]) -> float:
    return min(measure() for _ in range(tries))


def within(measured: float, expected: float) -> bool:
    return abs(measured - expected) <= TOLERANCE * expected


def test_delay_within_ten_percent(peer: Peer) -> None:
    profile = WanProfile(rtt=0.1, handshake_rtts=1)
    with Wan(profile) as wan:
        proxy = wan.proxy(peer.port)

        def first_exchange() -> float:
            started = time.perf_counter()
            with connect(proxy.port) as sock:
                ping(sock)
                return time.perf_counter() - started

        # a new connection: the handshake's round trip, then the exchange's
        assert within(best(2, first_exchange), 2 * profile.rtt)
        with connect(proxy.port) as sock:
            ping(sock)

            def round_trip() -> float:
                started = time.perf_counter()
                ping(sock)
                return time.perf_counter() - started

            assert within(best(4, round_trip), profile.rtt)


def test_rates_within_ten_percent(peer: Peer) -> None:
    profile = WanProfile(rtt=0.02, up_bps=20e6, down_bps=100e6, handshake_rtts=0)
    up_bytes, down_bytes = 1_250_000, 6_250_000  # 0.5 s each way
    with Wan(profile) as wan:
        proxy = wan.proxy(peer.port)
        with connect(proxy.port) as sock:
            ping(sock)

            def upload() -> float:
                header = b"SINK %d\n" % up_bytes
                started = time.perf_counter()
                sock.sendall(header + b"y" * up_bytes)
                assert receive(sock, 5) == b"done\n"
                elapsed = time.perf_counter() - started
                return elapsed - profile.rtt - len(header) * 8 / profile.up_bps

            def download() -> float:
                started = time.perf_counter()
                sock.sendall(b"GIVE %d\n" % down_bytes)
                receive(sock, down_bytes)
                return time.perf_counter() - started - profile.rtt

            assert within(best(3, upload), up_bytes * 8 / profile.up_bps)
            assert within(best(3, download), down_bytes * 8 / profile.down_bps)


def test_connections_share_the_link(peer: Peer) -> None:
    """Two downloads at once take as long as one of twice the size: one downlink."""
    profile = WanProfile(rtt=0.02, down_bps=100e6, handshake_rtts=0)
    each = 3_125_000
    with Wan(profile) as wan:
        proxy = wan.proxy(peer.port)
        sockets = [connect(proxy.port) for _ in range(2)]
        for sock in sockets:
            ping(sock)
        started = time.perf_counter()
        threads = [threading.Thread(target=lambda s=sock: (s.sendall(b"GIVE %d\n" % each),
                                                          receive(s, each)))
                   for sock in sockets]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        elapsed = time.perf_counter() - started - profile.rtt
        for sock in sockets:
            sock.close()
    assert within(elapsed, 2 * each * 8 / profile.down_bps)


def test_byte_counts_exact(peer: Peer) -> None:
    with Wan(WanProfile(rtt=0.002, handshake_rtts=0)) as wan:
        proxy = wan.proxy(peer.port, "peer")
        up = down = 0
        for index in range(3):
            with connect(proxy.port) as sock:
                request = b"GIVE %d\n" % (1000 * index + 7)
                sock.sendall(request)
                receive(sock, 1000 * index + 7)
                up, down = up + len(request), down + 1000 * index + 7
                payload = b"z" * (50_000 + index)
                sock.sendall(b"SINK %d\n" % len(payload) + payload)
                receive(sock, 5)
                up += len(b"SINK %d\n" % len(payload)) + len(payload)
                down += 5
        stats = wan.stats()
        assert (stats.connections, stats.bytes_up, stats.bytes_down) == (3, up, down)
        assert proxy.stats() == stats
        assert len(stats.exchanges) == 6
        proxy.reset()
        assert (proxy.stats().connections, proxy.stats().bytes_up, proxy.stats().bytes_down,
                proxy.stats().exchanges) == (0, 0, 0, ())


def test_sequential_round_trips(peer: Peer) -> None:
    profile = WanProfile(rtt=0.03, handshake_rtts=2)
    with Wan(profile) as wan:
        proxy = wan.proxy(peer.port)
        with connect(proxy.port) as sock:
            for _ in range(3):
                ping(sock)
            stats = proxy.stats()  # the last turn is still open: it counts as far as it got
            assert len(stats.exchanges) == 3
            assert stats.sequential_round_trips == 2 + 3
        proxy.reset()
        sockets = [connect(proxy.port) for _ in range(4)]
        barrier = threading.Barrier(4)

        def one(sock: socket.socket) -> None:
            barrier.wait()
            ping(sock)

        threads = [threading.Thread(target=one, args=(sock,)) for sock in sockets]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        stats = proxy.stats()
        for sock in sockets:
            sock.close()
    assert stats.connections == 4 and len(stats.exchanges) == 4
    assert stats.sequential_round_trips == 2 + 1  # four in parallel: one handshake, one turn


def test_sequential_round_trips_of_intervals() -> None:
    chain = [Exchange(0, 1, 3), Exchange(1.5, 2, 1), Exchange(2.5, 3, 1)]
    parallel = [Exchange(0.1, 0.9, 1), Exchange(0.2, 2.8, 1)]
    assert sequential_round_trips(chain) == 5
    assert sequential_round_trips([*chain, *parallel]) == 5
    assert sequential_round_trips([Exchange(0, 5, 1), Exchange(1, 2, 1), Exchange(3, 4, 1)]) == 2
    assert sequential_round_trips([]) == 0


def test_github_download_crosses_the_link(github_server: GitHubServer, wan: Wan,
                                          tmp_path: Path) -> None:
    """A server behind the link names the proxy in its redirects: every request crosses it,
    the archive's too, from its own origin (codeload) behind a proxy of its own."""
    from builder.code.download import download

    repo = github_server.create_repo("octo/app")
    sha = repo.commit({f"src/m{i}.py": f"print({i})\n" * 50 for i in range(20)}, "first")
    repo.push()
    proxy = behind_wan(wan, github_server)
    codeload = wan.proxies["github codeload"]
    assert github_server.url == proxy.url != github_server.direct_url
    assert github_server.codeload.url == codeload.url
    code = GitHubCodeRepository("app", "app", {
        "owner": "octo", "repository": "app", "url": github_server.url,
        "api_url": github_server.url, "token": github_server.token,
    })
    github_server.reset_counts()
    download(code, sha, tmp_path / "tree")
    assert github_server.request_count == 2  # the API's redirect, then the archive
    assert (len(proxy.stats().exchanges), len(codeload.stats().exchanges)) == (1, 1)
    stats = wan.stats()
    # two connections, one after the other: each its handshake and one exchange
    assert stats.sequential_round_trips == 2 * (1 + WanProfile().handshake_rtts)
    assert codeload.stats().bytes_down > sum(
        p.stat().st_size for p in (tmp_path / "tree").rglob("*.py")) / 20
    assert len(list((tmp_path / "tree" / "src").iterdir())) == 20


def test_cli_help() -> None:
    proc = subprocess.run([sys.executable, "-m", "tests.infra.wan_proxy", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "--forward" in proc.stdout and "--rtt" in proc.stdout and "--down" in proc.stdout


def test_cli_standalone_forwards_and_counts(peer: Peer) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.infra.wan_proxy", "--forward", f"0={peer.port}",
         "--rtt", "10", "--handshake-rtts", "0"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("127.0.0.1:") and f"-> 127.0.0.1:{peer.port}" in line
        port = int(line.split()[0].rsplit(":", 1)[1])
        with connect(port) as sock:
            ping(sock)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert "1 connections, 5 bytes up, 5 bytes down, 1 exchanges" in err


def test_cli_refuses_bad_forward() -> None:
    proc = subprocess.run([sys.executable, "-m", "tests.infra.wan_proxy", "--forward", "5000"],
                          cwd=ROOT, capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 2 and "LISTEN_PORT=UPSTREAM_PORT" in proc.stderr
