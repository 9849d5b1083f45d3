"""A narrow layer over docker-py: connect, inspect, pull, push, build (streamed), run once.

Every engine failure becomes an `EngineError` (exit code 1) with a one-line message; a
failing build step becomes a `BuildError` naming the step with its last lines of output.
docker is imported here only, and only when an engine is needed.
"""

from __future__ import annotations

import collections
import contextlib
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any

from builder.errors import BuildError, EngineError
from builder.images.progress import Progress
from builder.state.secrets import redact

if TYPE_CHECKING:
    import docker

DEFAULT_TIMEOUT = 1800.0
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
    def __init__(self, client: docker.DockerClient) -> None:
        self.client = client
        self.api = client.api
        self._removals: list[threading.Thread] = []

    @classmethod
    def connect(cls, timeout: float | None = None) -> Engine:
        import docker
        import requests

        if timeout is None:
            try:
                timeout = float(os.environ.get("BUILDER_ENGINE_TIMEOUT", DEFAULT_TIMEOUT))
            except ValueError:
                timeout = DEFAULT_TIMEOUT
        try:
            client = docker.from_env(timeout=int(timeout))
            client.ping()
        except (docker.errors.DockerException, requests.exceptions.RequestException,
                OSError) as exc:
            raise EngineError(
                f"cannot reach the Docker engine at {engine_address()}; is it running? "
                f"(make engine) [{_short(exc)}]"
            ) from None
        return cls(client)

    def is_local(self) -> bool:
        """Whether the engine runs on this machine (a unix socket): then a bind mount of a
        host path is that path."""
        return engine_address().startswith("unix://")

    def close(self) -> None:
        for removal in self._removals:  # containers removed in the background
            removal.join()
        self._removals.clear()
        self.client.close()

    # ---- images --------------------------------------------------------------------------

    def inspect(self, ref: str) -> dict[str, Any] | None:
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

        with contextlib.suppress(docker.errors.NotFound):
            self.api.remove_image(ref, force=True, noprune=False)

    # ---- build ---------------------------------------------------------------------------

    def build(self, context: IO[bytes], *, tag: str | None, progress: Progress,
              labels: Mapping[str, str] | None = None, nocache: bool = False,
              network_mode: str | None = None) -> str:
        """Build from a tar context; return the image id. A failing step is a BuildError."""
        import docker

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
