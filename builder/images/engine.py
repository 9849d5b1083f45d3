"""A narrow layer over docker-py: connect, inspect, pull, push, build (streamed), run once.

Every engine failure becomes an `EngineError` (exit code 1) with a one-line message; a
failing build step becomes a `BuildError` naming the step with its last lines of output.
docker is imported here only, and only when an engine is needed.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any

from builder.errors import BuildError, EngineError
from builder.images.engine_socket import DEFAULT, EngineAnswer, EngineSocket, path_part
from builder.images.progress import Progress
from builder.state.secrets import redact

if TYPE_CHECKING:
    import docker

DEFAULT_TIMEOUT = 1800.0
MINIMUM_API_VERSION = "1.24"  # docker-py's minimum; only used until the engine says its own
TAIL_LINES = 10
NETWORK_ENV = "BUILDER_BUILD_NETWORK"
_NOISE = (" ---> ", "Removing intermediate")
_STEP = re.compile(r"^Step \d+/\d+ : ")
_NOT_FOUND = re.compile(r"not found|manifest unknown|does not exist|no such image|"
                        r"repository .* not found|pull access denied", re.IGNORECASE)


def engine_address() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def build_network() -> str | None:
    """The network of RUN steps: `BUILDER_BUILD_NETWORK` (e.g. `host`), else the engine's."""
    value = os.environ.get(NETWORK_ENV, "").strip()
    return value or None


class Engine:
    """The engine: its unix socket for the few requests of every run (`EngineSocket`), and
    docker-py, loaded at its first use, for everything else (or for all, elsewhere than a
    unix socket)."""

    def __init__(self, client: docker.DockerClient | None = None,
                 socket: EngineSocket | None = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._client = client
        self.socket = socket
        self.timeout = timeout
        # What `inspect` said of each image, until builder changes it (pull, push, load,
        # build, remove): one command asks once.
        self._images: dict[str, dict[str, Any]] = {}
        self._removals: list[threading.Thread] = []

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            import docker

            assert self.socket is not None
            self._client = docker.DockerClient(base_url=f"unix://{self.socket.path}",
                                               version=_supported(self.socket.version),
                                               timeout=int(self.timeout))
        return self._client

    @property
    def api(self) -> docker.APIClient:
        return self.client.api

    @classmethod
    def connect(cls, timeout: float | None = None) -> Engine:
        if timeout is None:
            try:
                timeout = float(os.environ.get("BUILDER_ENGINE_TIMEOUT", DEFAULT_TIMEOUT))
            except ValueError:
                timeout = DEFAULT_TIMEOUT
        address = engine_address()
        if address.startswith("unix://") and not os.environ.get("DOCKER_TLS_VERIFY"):
            socket = EngineSocket(address.removeprefix("unix://"), timeout)
            try:
                socket.ping()
            except (EngineError, EngineAnswer) as exc:
                raise EngineError(
                    f"cannot reach the Docker engine at {address}; is it running? "
                    f"(make engine) [{_short(exc)}]"
                ) from None
            return cls(socket=socket, timeout=timeout)
        return cls(_docker_client(timeout), timeout=timeout)

    @classmethod
    def connect_soon(cls) -> Callable[[], Engine]:
        """Connect in the background; call the result for the engine, or the error, when it
        is needed."""
        import threading

        box: list[Engine | BaseException] = []

        def work() -> None:
            try:
                box.append(cls.connect())
            except BaseException as exc:  # handed to the caller
                box.append(exc)

        thread = threading.Thread(target=work, name="builder-engine", daemon=True)
        thread.start()

        def result() -> Engine:
            thread.join()
            value = box[0]
            if isinstance(value, BaseException):
                raise value
            return value

        return result

    def is_local(self) -> bool:
        """Whether the engine runs on this machine (a unix socket): then a bind mount of a
        host path is that path."""
        return engine_address().startswith("unix://")

    def close(self) -> None:
        for removal in self._removals:  # containers removed in the background
            removal.join()
        self._removals.clear()
        if self._client is not None:
            self._client.close()

    # ---- images --------------------------------------------------------------------------

    def inspect(self, ref: str) -> dict[str, Any] | None:
        """What the engine says of an image (`docker inspect`), or None if it has none."""
        if ref not in self._images:
            data = self._inspect(ref)
            if data is None:
                return None
            self._images[ref] = data
        return dict(self._images[ref])

    def _inspect(self, ref: str) -> dict[str, Any] | None:
        if self.socket is not None:
            try:
                return dict(self.socket.call("GET", f"/images/{path_part(ref)}/json"))
            except EngineAnswer as exc:
                if exc.status == 404:
                    return None
                raise EngineError(f"inspect image {ref}: {redact(str(exc))}") from None
        import docker

        with self._errors(f"inspect image {ref}"):
            try:
                return dict(self.api.inspect_image(ref))
            except docker.errors.NotFound:
                return None

    def image_id(self, ref: str) -> str | None:
        data = self.inspect(ref)
        return str(data["Id"]) if data else None

    def pull(self, ref: str, progress: Progress | None = None) -> str | None:
        """Pull ref; None on success, else why not (not found, registry unreachable...)."""
        import docker

        self._images.pop(ref, None)

        from builder.images.names import split_ref

        repository, tag = split_ref(ref)
        try:
            with self._errors(f"pull {ref}"):
                for chunk in self.api.pull(repository, tag=tag, stream=True, decode=True):
                    if "error" in chunk:
                        return redact(str(chunk["error"]))
                    if progress is not None and chunk.get("status"):
                        progress.line(f"{chunk.get('id', '')} {chunk['status']}".strip())
        except docker.errors.APIError as exc:
            return _api_message(exc)
        except EngineError as exc:
            if _NOT_FOUND.search(str(exc)):
                return str(exc)
            raise
        return None

    def push(self, ref: str, progress: Progress | None = None) -> str:
        """Push ref; return the registry's manifest digest."""
        import docker

        self._images.pop(ref, None)  # its RepoDigests change

        from builder.images.names import split_ref

        repository, tag = split_ref(ref)
        digest = ""
        try:
            with self._errors(f"push {ref}"):
                for chunk in self.api.push(repository, tag=tag, stream=True, decode=True):
                    if "error" in chunk:
                        raise EngineError(redact(f"push of {ref} failed: {chunk['error']}"))
                    aux = chunk.get("aux") or {}
                    digest = aux.get("Digest", digest)
                    if progress is not None and chunk.get("status"):
                        progress.line(f"{chunk.get('id', '')} {chunk['status']}".strip())
        except docker.errors.APIError as exc:
            raise EngineError(f"push of {ref} failed: {_api_message(exc)}") from None
        return digest

    def registry_digest(self, ref: str) -> str | None:
        """The manifest digest the registry has for ref, or None (absent or unreachable)."""
        import docker
        import requests

        try:
            data = self.api.inspect_distribution(ref)
        except (docker.errors.APIError, requests.exceptions.RequestException):
            return None
        descriptor = data.get("Descriptor") or {}
        return descriptor.get("digest")

    def local_digests(self, ref: str) -> list[str]:
        data = self.inspect(ref) or {}
        return [d.rpartition("@")[2] for d in data.get("RepoDigests") or []]

    def remove(self, ref: str) -> None:
        import docker

        self._images.pop(ref, None)

        with contextlib.suppress(docker.errors.NotFound):
            self.api.remove_image(ref, force=True, noprune=False)

    def load(self, archive: IO[bytes], ref: str) -> None:
        """`docker load` of an archive in `docker save`'s format that tags `ref`."""
        import docker

        self._images.pop(ref, None)

        try:
            with self._errors(f"load {ref}"):
                for chunk in self.api.load_image(archive):
                    if "error" in chunk:
                        raise BuildError(redact(f"loading {ref} failed: {chunk['error']}"))
        except docker.errors.APIError as exc:
            raise BuildError(f"loading {ref} failed: {_api_message(exc)}") from None

    # ---- build ---------------------------------------------------------------------------

    def build(self, context: IO[bytes], *, tag: str | None, progress: Progress,
              labels: Mapping[str, str] | None = None, nocache: bool = False,
              network_mode: str | None = None) -> str:
        """Build from a tar context; return the image id. A failing step is a BuildError."""
        import docker

        if tag:
            self._images.pop(tag, None)

        tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        step = ""
        image_id = ""
        pending = ""
        kwargs: dict[str, Any] = {
            "fileobj": context, "custom_context": True, "labels": dict(labels or {}),
            "rm": True, "forcerm": True, "decode": True, "nocache": nocache, "pull": False,
        }
        if tag:
            kwargs["tag"] = tag
        what = tag or "an image"
        if network_mode:
            kwargs["network_mode"] = network_mode
        try:
            with self._errors(f"build {what}"):
                for chunk in self.api.build(**kwargs):
                    if "error" in chunk:
                        if pending.strip():
                            tail.append(pending.rstrip())
                        raise _build_error(what, step, str(chunk["error"]), tail)
                    aux = chunk.get("aux")
                    if isinstance(aux, dict) and aux.get("ID"):
                        image_id = str(aux["ID"])
                    text = chunk.get("stream")
                    if not text:
                        if chunk.get("status"):
                            progress.line(str(chunk["status"]))
                        continue
                    pending += text
                    *lines, pending = pending.split("\n")
                    for line in lines:
                        line = line.rstrip("\r")
                        if _STEP.match(line):
                            step = line
                            tail.clear()
                            progress.step(line)
                        elif line.strip() and not line.startswith(_NOISE):
                            tail.append(line)
                            progress.line(line)
        except docker.errors.BuildError as exc:
            raise _build_error(what, step, str(exc), tail) from None
        except docker.errors.APIError as exc:
            message = _api_message(exc)
            raise BuildError(redact(f"building {what} failed: {message}")) from None
        if not image_id and tag:
            image_id = self.image_id(tag) or ""
        if not image_id:
            raise BuildError(f"building {what} finished without an image")
        return image_id

    # ---- containers (the requests of `builder run`) ---------------------------------------

    def create_container(self, image: str, command: Sequence[str], environment: Mapping[str, str],
                         binds: Mapping[str, Mapping[str, str]], *, network: str | None,
                         tmpfs: Mapping[str, str], labels: Mapping[str, str]) -> str:
        """Create (not start) a container; `binds` maps a host path or volume to
        {"bind": path, "mode": "ro"|"rw"}. Returns its id."""
        config: dict[str, Any] = {
            "Image": image,
            "Cmd": list(command),
            "Env": [f"{key}={value}" for key, value in environment.items()],
            "Labels": dict(labels),
            "Volumes": {bind["bind"]: {} for bind in binds.values()},
            "AttachStdout": True,
            "AttachStderr": True,
            "HostConfig": {
                "Binds": [f"{source}:{bind['bind']}:{bind.get('mode', 'rw')}"
                          for source, bind in binds.items()],
                "Tmpfs": dict(tmpfs),
                **({"NetworkMode": network} if network else {}),
            },
        }
        answer = self._container_call("POST", "/containers/create", body=config,
                                      missing=f"image {image} is not in the local engine",
                                      what="cannot create the container")
        return str(answer["Id"])

    def attach(self, container: str) -> Iterator[tuple[bytes | None, bytes | None]]:
        """The container's (stdout, stderr) chunks, from its start to its end (no TTY)."""
        if self.socket is not None:
            try:
                return self.socket.attach(f"/containers/{container}/attach")
            except EngineAnswer as exc:
                raise EngineError(f"cannot attach to container {container[:12]}: "
                                  f"{redact(str(exc))}") from None
        api = self.api
        # docker-py's own `attach` inspects the container first to learn whether it has a
        # TTY; ours never has one, so this asks for the stream at once with its helpers.
        response = api._post(api._url("/containers/{0}/attach", container),
                             headers={"Connection": "Upgrade", "Upgrade": "tcp"},
                             params={"logs": 1, "stdout": 1, "stderr": 1, "stream": 1},
                             stream=True)
        return api._read_from_socket(response, True, tty=False, demux=True)  # type: ignore[no-any-return]

    def start(self, container: str) -> None:
        self._container_call("POST", f"/containers/{container}/start",
                             what=f"cannot start container {container[:12]}")

    def wait(self, container: str) -> int:
        """Wait for the container to stop; its exit code."""
        answer = self._container_call("POST", f"/containers/{container}/wait",
                                      what=f"cannot wait for container {container[:12]}",
                                      timeout=None)
        return int((answer or {}).get("StatusCode", 1))

    def stop(self, container: str, timeout: int) -> None:
        self._container_call("POST", f"/containers/{container}/stop", {"t": timeout},
                             what=f"cannot stop container {container[:12]}",
                             timeout=timeout + self.timeout)

    def kill(self, container: str) -> None:
        self._container_call("POST", f"/containers/{container}/kill",
                             what=f"cannot kill container {container[:12]}")

    def containers_labelled(self, label: str) -> list[tuple[str, dict[str, str]]]:
        """(id, labels) of every container, running or not, that has `label`."""
        query = {"all": "1", "filters": json.dumps({"label": [label]})}
        answer = self._container_call("GET", "/containers/json", query,
                                      what="cannot list containers")
        return [(str(item["Id"]), dict(item.get("Labels") or {})) for item in answer or []]

    def remove_container(self, container: str) -> None:
        self._container_call("DELETE", f"/containers/{container}", {"force": "true"},
                             what=f"could not remove container {container[:12]}")

    def _container_call(self, method: str, path: str, query: Mapping[str, Any] | None = None,
                        *, body: Any = None, what: str, missing: str | None = None,
                        timeout: float | None = DEFAULT) -> Any:
        """One request; an error answer is an `EngineError` saying `what` (or `missing` for
        a 404). `timeout` None: as long as it takes (a container's run)."""
        wait = self.timeout if timeout == DEFAULT else timeout
        if self.socket is not None:
            try:
                return self.socket.call(method, path, query, body, timeout=wait)
            except EngineAnswer as exc:
                text = missing if exc.status == 404 and missing else f"{what}: {exc}"
                raise EngineError(redact(text)) from None
        import docker

        api = self.api
        url = api._url(path)
        try:
            with self._errors(what):
                kwargs: dict[str, Any] = {"params": dict(query or {}), "timeout": wait}
                if body is not None:
                    kwargs["data"] = json.dumps(body)
                    kwargs["headers"] = {"Content-Type": "application/json"}
                response = {"GET": api._get, "POST": api._post,
                            "DELETE": api._delete}[method](url, **kwargs)
                return api._result(response, json=bool(response.content))
        except docker.errors.NotFound as exc:
            raise EngineError(redact(missing or f"{what}: {_api_message(exc)}")) from None
        except docker.errors.APIError as exc:
            raise EngineError(redact(f"{what}: {_api_message(exc)}")) from None

    def run_commit(self, image: str, script: str, *, files: IO[bytes] | None,
                   mounts: Mapping[str, str],
                   changes: Sequence[str] | Callable[[list[str]], Sequence[str]],
                   progress: Progress, network_mode: str | None = None, what: str = "image",
                   message: str = "", report: str = "") -> str:
        """Run a shell script in a container of image, as root, with `mounts` (host path ->
        container path, read-write) and `files` (a tar, unpacked at `/` before the start);
        commit the container with `changes` (Dockerfile instructions); return the image id.

        `report`: lines of output that start with it and a space are the script's report,
        not shown; `changes` may be a function of their rest.

        This is a build step with mounts, which the classic builder does not have. A failing
        script is a BuildError with its last lines of output; the container is always removed.
        """
        import docker

        tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        reports: list[str] = []
        container = None
        try:
            with self._errors("install step"):
                host_config = self.api.create_host_config(
                    binds={source: {"bind": target, "mode": "rw"}
                           for source, target in mounts.items()},
                    network_mode=network_mode,
                )
                container = self.api.create_container(
                    image, command=[script], entrypoint=["/bin/sh", "-c"], user="0",
                    working_dir="/", host_config=host_config,
                    labels={"org.builder.role": "install-step", "org.builder.image": what},
                )["Id"]
                if files is not None:
                    self.api.put_archive(container, "/", files)
                self.api.start(container)

                def take(line: str) -> None:
                    if report and line.startswith(report + " "):
                        reports.append(line[len(report) + 1:].rstrip())
                    elif line.strip():
                        tail.append(line.rstrip())
                        progress.line(line.rstrip())

                pending = ""
                for chunk in self.api.logs(container, stream=True, follow=True):
                    pending += chunk.decode("utf-8", "replace")
                    *lines, pending = pending.split("\n")
                    for line in lines:
                        take(line)
                take(pending)
                status = int(self.api.wait(container).get("StatusCode", -1))
                if status != 0:
                    raise _build_error(what, "the install step",
                                       f"exit code {status}", tail)
                final = changes(reports) if callable(changes) else changes
                committed = self.api.commit(container, message=message or None,
                                            changes=list(final))
                # Removing the container's files takes a while: it goes on while builder does
                # what comes next, and `close` waits for it.
                self._remove_later(container)
                container = None
                return str(committed["Id"])
        except docker.errors.APIError as exc:
            raise BuildError(redact(f"building {what} failed in the install step: "
                                    f"{_api_message(exc)}")) from None
        finally:
            if container is not None:
                with contextlib.suppress(docker.errors.APIError, EngineError):
                    self.api.remove_container(container, force=True)

    def _remove_later(self, container: str) -> None:
        import docker

        def remove() -> None:
            # a client of its own (connected as `connect` does): docker-py's session is not
            # shared between threads
            with contextlib.suppress(Exception):  # a container left over is no failure
                client = docker.from_env(timeout=int(self.api.timeout))
                try:
                    client.api.remove_container(container, force=True)
                finally:
                    client.close()

        thread = threading.Thread(target=remove, name="builder-remove-container")
        thread.start()
        self._removals.append(thread)

    def labelled_image(self, labels: Mapping[str, str]) -> str | None:
        """The id of an image that has all these labels (tagged or not), or None."""
        filters = {"label": [f"{key}={value}" for key, value in sorted(labels.items())]}
        with self._errors("list images"):
            found = self.api.images(filters=filters, all=True, quiet=True)
        return str(found[0]) if found else None

    def tag(self, image_id: str, ref: str) -> None:
        import docker

        from builder.images.names import split_ref

        repository, tag = split_ref(ref)
        self._images.pop(ref, None)
        try:
            with self._errors(f"tag {ref}"):
                self.api.tag(image_id, repository, tag=tag, force=True)
        except docker.errors.APIError as exc:
            raise EngineError(f"cannot tag {ref}: {_api_message(exc)}") from None

    def run_once(self, image: str, command: Sequence[str]) -> str:
        """Run a command in a throwaway container without network; return its output."""
        import docker

        try:
            with self._errors(f"run {image}"):
                output = self.client.containers.run(
                    image, list(command[1:]), entrypoint=[command[0]], remove=True,
                    stdout=True, stderr=True, network_disabled=True, user="0",
                )
        except docker.errors.ContainerError as exc:
            stderr = exc.stderr.decode("utf-8", "replace") if isinstance(exc.stderr, bytes) else ""
            raise BuildError(redact(f"`{' '.join(command[:2])}` failed in image {image[:19]}: "
                                    f"{stderr.strip()[-300:] or exc}")) from None
        except docker.errors.APIError as exc:
            raise BuildError(f"cannot run image {image[:19]}: {_api_message(exc)}") from None
        return output.decode("utf-8", "replace") if isinstance(output, bytes) else str(output)

    # ---- errors --------------------------------------------------------------------------

    def _errors(self, what: str) -> _EngineErrors:
        return _EngineErrors(what)


class _EngineErrors:
    """Turns connection failures into EngineError; lets docker's API errors through."""

    def __init__(self, what: str) -> None:
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: object) -> None:
        if exc is None:
            return
        import docker.errors
        import requests

        # docker's APIError is a RequestException too, but it is the engine answering
        # (e.g. a registry refusing a pull): the callers handle it.
        if isinstance(exc, docker.errors.APIError):
            return
        if isinstance(exc, requests.exceptions.RequestException | ConnectionError):
            raise EngineError(
                f"lost the Docker engine at {engine_address()} during {self.what}: {_short(exc)}; "
                "is it running? (make engine)"
            ) from None


def _docker_client(timeout: float) -> docker.DockerClient:
    """docker-py for an engine elsewhere than a local unix socket (tcp, ssh, TLS)."""
    import docker
    import requests

    try:
        # One request: the ping's `Api-Version` header is the version to speak (as the
        # docker CLI negotiates); docker-py's "auto" would ask `/version` first.
        client = docker.from_env(version=MINIMUM_API_VERSION, timeout=int(timeout))
        answer = client.api._get(client.api.base_url + "/_ping")  # unversioned path
        client.api._raise_for_status(answer)
        version = answer.headers.get("Api-Version") or client.api.version()["ApiVersion"]
        client.api._version = _supported(version)
    except (docker.errors.DockerException, requests.exceptions.RequestException,
            OSError, KeyError) as exc:
        raise EngineError(
            f"cannot reach the Docker engine at {engine_address()}; is it running? "
            f"(make engine) [{_short(exc)}]"
        ) from None
    return client


def _supported(version: str) -> str:
    """The engine's API version, capped at the newest docker-py speaks."""
    from docker.constants import DEFAULT_DOCKER_API_VERSION, MINIMUM_DOCKER_API_VERSION
    from docker.utils import version_lt

    if not version or version_lt(version, MINIMUM_DOCKER_API_VERSION):
        return MINIMUM_DOCKER_API_VERSION
    return version if version_lt(version, DEFAULT_DOCKER_API_VERSION) else \
        DEFAULT_DOCKER_API_VERSION


def _build_error(tag: str, step: str, error: str, tail: Iterable[str]) -> BuildError:
    lines = "\n".join(f"  | {line}" for line in tail)
    where = f" at {step!r}" if step else ""
    message = f"building {tag} failed{where}: {error.strip()}"
    if lines:
        message += f"\nlast lines of output:\n{lines}"
    return BuildError(redact(message))


def _api_message(exc: Exception) -> str:
    explanation = getattr(exc, "explanation", None)
    text = explanation if explanation else str(exc)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return redact(" ".join(str(text).split()))


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return redact(text[:300]) or type(exc).__name__
