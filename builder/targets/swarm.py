"""`builder run --target swarm`: the plan as a Docker Swarm service that runs once.

The service runs one task with restart condition `none`. Its image is the one pushed to the
registry (pinned by digest), so any node can pull it. The repository token becomes a Docker
secret named after its content (`builder-token-<hash>`, created once and reused), mounted at
`/run/secrets/builder-token` and named by `BUILDER_TOKEN_FILE`; the service's spec and its
containers carry no token. The task's output streams to our stdout and stderr; builder
returns the task's exit code. Ctrl-C (or SIGTERM) removes the service. The service is
removed in every case, and then every token secret of builder's that no service uses. A run
killed with SIGKILL cannot do that; its service carries the owner label of
`builder.targets.orphans`, so the next run removes it, and with it the token secret.
"""

from __future__ import annotations

import contextlib
import secrets as _random
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from types import FrameType
from typing import Any, BinaryIO

from builder.errors import BuilderError, EngineError
from builder.state.secrets import redact
from builder.targets import Workload, dns_label, token_secret_name
from builder.targets.local import TOKEN_MOUNT

LABEL_PREFIX = "org.builder."
TOKEN_LABEL = LABEL_PREFIX + "token"
SECRETS_DIR = PurePosixPath("/run/secrets")
POLL_SECONDS = 0.25
PENDING_NOTICE_SECONDS = 30.0
DRAIN_SECONDS = 5.0
STOP_GRACE_SECONDS = 10
TERMINAL_STATES = frozenset({"complete", "failed", "shutdown", "rejected", "orphaned", "remove"})
Log = Callable[[str], None]


class NotSwarmManagerError(EngineError):
    """The engine cannot create services: it is not a swarm manager."""


# ---- checks ------------------------------------------------------------------------------


def require_manager(client: Any) -> None:
    """A clear error, with the command that fixes it, unless the engine manages a swarm."""
    swarm = (client.info() or {}).get("Swarm") or {}
    state = swarm.get("LocalNodeState", "inactive")
    if state == "active" and swarm.get("ControlAvailable"):
        return
    if state == "active":
        raise NotSwarmManagerError(
            "this Docker engine is a swarm worker, not a manager: run builder against a manager "
            "(DOCKER_HOST) or promote this node with `docker node promote <node>` on a manager"
        )
    raise NotSwarmManagerError(
        f"this Docker engine is not a swarm manager (swarm state: {state}); "
        "create a swarm with `docker swarm init` (e.g. `docker swarm init --advertise-addr "
        "127.0.0.1` for one machine) or join one with `docker swarm join`"
    )


# ---- the service spec (pure) -------------------------------------------------------------


@dataclass(frozen=True)
class ServicePlan:
    """The arguments of `client.services.create`, apart from docker-py's typed objects."""

    name: str
    image: str
    args: list[str]
    env: list[str]
    labels: dict[str, str]
    mounts: list[dict[str, Any]] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    secret_file: str | None = None  # the token secret's file name under /run/secrets


def service_plan(workload: Workload, name: str | None = None) -> ServicePlan:
    """The service for a workload: contract env, cache volume, token secret file, network."""
    spec = workload.spec
    mounts = []
    for source, bind in sorted(spec.volumes.items()):
        kind = "bind" if source.startswith("/") else "volume"
        mounts.append(
            {
                "source": source,
                "target": bind["bind"],
                "type": kind,
                "read_only": bind.get("mode") == "ro",
            }
        )
    secret_file = None
    if spec.token:
        token_path = PurePosixPath(TOKEN_MOUNT)
        secret_file = (
            token_path.name if token_path.parent == SECRETS_DIR else str(token_path)
        )
        assert spec.environment.get("BUILDER_TOKEN_FILE") == TOKEN_MOUNT
    return ServicePlan(
        name=name or f"builder-{dns_label(workload.project, 40)}-{_random.token_hex(4)}",
        image=spec.image,
        args=list(spec.command),
        env=[f"{key}={value}" for key, value in sorted(spec.environment.items())],
        labels=workload.labels(LABEL_PREFIX),
        mounts=mounts,
        networks=[spec.network] if spec.network else [],
        secret_file=secret_file,
    )


# ---- token secrets -----------------------------------------------------------------------


def ensure_token_secret(client: Any, token: str) -> tuple[str, str]:
    """The id and name of the Docker secret holding token, created if it does not exist."""
    import docker.errors

    name = token_secret_name(token)
    existing = _find_secret(client, name)
    if existing is not None:
        return existing, name
    try:
        created = client.secrets.create(
            name=name, data=token.encode("utf-8"), labels={TOKEN_LABEL: "1"}
        )
        return str(created.id), name
    except docker.errors.APIError as exc:
        existing = _find_secret(client, name)  # another builder created it meanwhile
        if existing is not None:
            return existing, name
        raise EngineError(f"cannot create the token secret {name}: {_explain(exc)}") from None


def _find_secret(client: Any, name: str) -> str | None:
    for item in client.secrets.list(filters={"name": name}):
        if item.name == name:
            return str(item.id)
    return None


def prune_token_secrets(client: Any, log: Log) -> list[str]:
    """Remove builder's token secrets that no service references; return their names."""
    import docker.errors

    try:
        used = {
            ref.get("SecretID")
            for service in client.api.services()
            for ref in (
                service.get("Spec", {}).get("TaskTemplate", {}).get("ContainerSpec", {})
                .get("Secrets") or []
            )
        }
        removed = []
        for item in client.secrets.list(filters={"label": f"{TOKEN_LABEL}=1"}):
            if item.id in used:
                continue
            try:
                item.remove()
                removed.append(item.name)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError:
                pass  # a service started using it since we looked: it stays
        return removed
    except docker.errors.APIError as exc:
        log(f"could not clean up token secrets: {_explain(exc)}")
        return []


# ---- running -----------------------------------------------------------------------------


def remove_orphans(client: Any, home: Path, log: Log) -> list[str]:
    """Remove the services that killed runs of `home` left behind, then every token secret
    of builder's that no service uses any more; return the removed services' names."""
    import docker.errors

    from builder.targets.orphans import OWNER_LABEL, is_orphan

    removed: list[str] = []
    try:
        services = client.api.services(filters={"label": OWNER_LABEL})
    except docker.errors.APIError as exc:
        log(f"could not look for services of killed runs: {_explain(exc)}")
        return removed
    for service in services:
        spec = service.get("Spec") or {}
        if is_orphan(spec.get("Labels"), home):
            with contextlib.suppress(docker.errors.NotFound):
                try:
                    client.api.remove_service(service["ID"])
                except docker.errors.APIError as exc:
                    log(f"could not remove service {spec.get('Name')}: {_explain(exc)}")
                    continue
                removed.append(str(spec.get("Name")))
                log(f"removed service {spec.get('Name')}, left behind by a killed run")
    prune_token_secrets(client, log)
    return removed


def run_service(client: Any, workload: Workload, log: Log, name: str | None = None,
                labels: Mapping[str, str] | None = None) -> int:
    """Create the service, stream its output, return the task's exit code; always remove it.

    `labels` name the run that owns the service (see `builder.targets.orphans`)."""
    import docker.errors

    plan = service_plan(workload, name)
    if labels:
        plan = replace(plan, labels={**plan.labels, **labels})
    service_id: str | None = None
    interrupted = threading.Event()
    received: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        interrupted.set()

    handlers = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        service_id = _create(client, plan, workload.token)
        log(f"service {plan.name} ({service_id[:12]}) on image {plan.image}")
        code = _follow(client, service_id, interrupted, log)
        if code is None:
            signum = received[0] if received else signal.SIGINT
            log(f"interrupted: removing service {plan.name}")
            return 128 + int(signum)
        return code
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        if service_id is not None:
            try:
                client.api.remove_service(service_id)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                log(f"could not remove service {plan.name}: {_explain(exc)}")
        if workload.token:
            prune_token_secrets(client, log)


def _create(client: Any, plan: ServicePlan, token: str | None) -> str:
    import docker.errors
    import docker.types

    for attempt in (1, 2):
        secret_refs = []
        if token and plan.secret_file:
            secret_id, secret_name = ensure_token_secret(client, token)
            secret_refs.append(
                docker.types.SecretReference(
                    secret_id, secret_name, filename=plan.secret_file, uid="0", gid="0",
                    mode=0o400,
                )
            )
        try:
            service = client.services.create(
                plan.image,
                args=plan.args,
                name=plan.name,
                env=plan.env,
                labels=plan.labels,
                container_labels=plan.labels,
                mounts=[docker.types.Mount(**mount) for mount in plan.mounts],
                networks=plan.networks or None,
                secrets=secret_refs,
                restart_policy=docker.types.RestartPolicy(condition="none"),
                stop_grace_period=STOP_GRACE_SECONDS * 1_000_000_000,
            )
            return str(service.id)
        except docker.errors.APIError as exc:
            text = _explain(exc)
            # a concurrent builder removed the (then unused) secret between lookup and create
            if attempt == 1 and secret_refs and "secret" in text.lower() and "not found" in text:
                continue
            raise EngineError(f"cannot create service {plan.name}: {text}") from None
    raise AssertionError("unreachable")


def _follow(client: Any, service_id: str, interrupted: threading.Event, log: Log) -> int | None:
    """Stream logs until the task ends; its exit code, or None if interrupted first."""
    stream = _LogStream(client.api, service_id)
    stream.start()
    started = time.monotonic()
    noticed = False
    try:
        while not interrupted.wait(POLL_SECONDS):
            task = _task(client, service_id)
            status = (task or {}).get("Status") or {}
            state = status.get("State", "")
            if state in TERMINAL_STATES:
                stream.finish()
                return _exit_code(status, state)
            if (
                not noticed
                and state in ("", "new", "pending", "assigned")
                and time.monotonic() - started > PENDING_NOTICE_SECONDS
            ):
                noticed = True
                why = status.get("Err") or status.get("Message") or state or "no task yet"
                log(f"the task is not running yet ({why}); Ctrl-C removes the service")
        return None
    finally:
        stream.close()


def _task(client: Any, service_id: str) -> dict[str, Any] | None:
    import docker.errors

    try:
        tasks = client.api.tasks(filters={"service": service_id})
    except docker.errors.APIError as exc:
        raise EngineError(f"cannot read the service's tasks: {_explain(exc)}") from None
    newest: dict[str, Any] | None = None
    for task in tasks or []:
        if newest is None or str(task.get("CreatedAt", "")) > str(newest.get("CreatedAt", "")):
            newest = dict(task)
    return newest


def _exit_code(status: dict[str, Any], state: str) -> int:
    container = status.get("ContainerStatus") or {}
    if "ExitCode" in container and container.get("ContainerID"):
        return int(container["ExitCode"])
    if state == "complete":
        return 0
    why = status.get("Err") or status.get("Message") or state
    raise BuilderError(redact(f"the service's task ended without running ({state}: {why})"))


class _LogStream:
    """`/services/{id}/logs` with stdout and stderr kept apart (docker-py merges them).

    A follow stream does not end when the task does. So when the task has ended, `finish`
    stops following, reads the complete logs once more without following, and writes the
    messages the follow stream had not delivered yet (counted per stream).
    """

    def __init__(self, api: Any, service_id: str) -> None:
        self.api = api
        self.service_id = service_id
        self.counts = {1: 0, 2: 0}
        self.lock = threading.Lock()
        self.stopping = False
        self.response: Any = None
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        try:
            response = self._open(follow=True)
            with self.lock:
                if self.stopping:
                    response.close()
                    return
                self.response = response
            for stream, data in _frames(response.raw):
                with self.lock:
                    if self.stopping:
                        return
                    _write(stream, data)
                    self.counts[stream] = self.counts.get(stream, 0) + 1
        except Exception:  # the stream was closed under us, or the engine went away
            return

    def finish(self) -> None:
        """The task has ended: deliver the rest of its output, exactly once."""
        self.close()
        response = self._open(follow=False)
        seen: dict[int, int] = {}
        try:
            for stream, data in _frames(response.raw):
                seen[stream] = seen.get(stream, 0) + 1
                if seen[stream] > self.counts.get(stream, 0):
                    _write(stream, data)
        finally:
            response.close()

    def close(self) -> None:
        """Stop following: shut the socket down under the reader, then release the response."""
        with self.lock:
            self.stopping = True
            response = self.response
        if response is not None:
            with contextlib.suppress(Exception):
                raw = self.api._get_raw_response_socket(response)
                getattr(raw, "_sock", raw).shutdown(socket.SHUT_RDWR)  # SocketIO or socket
        if self.thread is not None:
            self.thread.join(DRAIN_SECONDS)
        if response is not None and not (self.thread and self.thread.is_alive()):
            with contextlib.suppress(Exception):
                response.close()  # blocks while another thread reads, hence after the join

    def _open(self, follow: bool) -> Any:
        import docker.errors

        url = self.api._url("/services/{0}/logs", self.service_id)
        params = {"follow": follow, "stdout": True, "stderr": True, "timestamps": False}
        response = self.api._get(url, params=params, stream=True, timeout=None)
        try:
            self.api._raise_for_status(response)
        except docker.errors.APIError as exc:
            response.close()
            raise EngineError(f"cannot read the service's logs: {_explain(exc)}") from None
        with contextlib.suppress(Exception):
            self.api._disable_socket_timeout(self.api._get_raw_response_socket(response))
        return response


def _frames(raw: BinaryIO) -> Iterator[tuple[int, bytes]]:
    """Docker's multiplexed stream: an 8-byte header (stream id, length), then the data."""
    while True:
        header = _read_exact(raw, 8)
        if len(header) < 8:
            return
        stream, length = struct.unpack(">BxxxL", header)
        if not length:
            continue
        data = _read_exact(raw, length)
        if not data:
            return
        yield stream, data


def _read_exact(raw: BinaryIO, size: int) -> bytes:
    chunks = []
    remaining = size
    while remaining:
        chunk = raw.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _write(stream: int, data: bytes) -> None:
    target = sys.stderr if stream == 2 else sys.stdout
    target.buffer.write(data)
    target.buffer.flush()


def _explain(exc: Exception) -> str:
    text = getattr(exc, "explanation", None) or str(exc)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return redact(" ".join(str(text).split()))
