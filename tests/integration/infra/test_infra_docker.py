"""The real Docker infrastructure the other tests use: engine, parent image, registry.

Needs `make infra` (engine, parent image, registry). Fails, never skips, without it.
"""

from __future__ import annotations

import contextlib
import io
import json
import urllib.request
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from tests.infra.docker_fixtures import HOST_NETWORK

if TYPE_CHECKING:
    import docker

pytestmark = pytest.mark.docker

PREFIX = "builder-test-infra"


@pytest.fixture
def made_images(docker_client: docker.DockerClient) -> Iterator[list[str]]:
    """Image references a test creates; removed afterwards."""
    import docker

    refs: list[str] = []
    yield refs
    for ref in reversed(refs):
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker_client.images.remove(ref, force=True, noprune=False)


def build(
    client: docker.DockerClient, dockerfile: str, tag: str, network_mode: str | None = None
) -> tuple[Any, str]:
    """Build ``dockerfile`` (no context files, no cache) and return (image, build log)."""
    image, logs = client.images.build(
        fileobj=io.BytesIO(dockerfile.encode()),
        tag=tag,
        rm=True,
        forcerm=True,
        nocache=True,
        network_mode=network_mode,
    )
    text = "".join(chunk.get("stream", "") for chunk in logs if isinstance(chunk, dict))
    return image, text


def test_engine_answers(docker_client: docker.DockerClient) -> None:
    assert docker_client.ping() is True
    version = docker_client.version()
    major, minor = (int(x) for x in version["ApiVersion"].split("."))
    assert (major, minor) >= (1, 41)
    # docker-py negotiated an API version the daemon supports.
    assert docker_client.api.api_version == version["ApiVersion"]


def test_parent_image_has_python_pip_and_ca(
    docker_client: docker.DockerClient, parent_image: str
) -> None:
    script = (
        "import json, os, subprocess, sys\n"
        "pip = subprocess.run([sys.executable, '-m', 'pip', '--version'],"
        " capture_output=True, text=True)\n"
        "ca = os.environ.get('PIP_CERT', '')\n"
        "print(json.dumps({'version': list(sys.version_info[:2]), 'pip': pip.returncode,"
        " 'pip_cert': ca, 'requests_ca': os.environ.get('REQUESTS_CA_BUNDLE', ''),"
        " 'ca_size': os.path.getsize(ca) if ca and os.path.isfile(ca) else 0}))\n"
    )
    out = docker_client.containers.run(parent_image, ["python", "-c", script], remove=True)
    facts = json.loads(out.decode().strip().splitlines()[-1])
    assert facts["version"] == [3, 11]
    assert facts["pip"] == 0
    assert facts["pip_cert"], "PIP_CERT is not set in the parent image"
    assert facts["requests_ca"] == facts["pip_cert"]
    assert facts["ca_size"] > 1000, "PIP_CERT does not point at a CA bundle"


@pytest.mark.parametrize("network_mode", [None, HOST_NETWORK], ids=["bridge", "host"])
def test_build_from_parent_can_pip_install(
    docker_client: docker.DockerClient,
    parent_image: str,
    made_images: list[str],
    network_mode: str | None,
) -> None:
    tag = f"{PREFIX}-pip:{uuid.uuid4().hex[:12]}"
    made_images.append(tag)
    dockerfile = (
        f"FROM {parent_image}\n"
        "RUN pip install --no-cache-dir six\n"
        "RUN python -c 'import six; print(\"six\", six.__version__)'\n"
    )
    image, log = build(docker_client, dockerfile, tag, network_mode)
    assert "Successfully installed six" in log
    out = docker_client.containers.run(
        image.id, ["python", "-c", "import six; print(six.__file__)"], remove=True
    )
    assert b"six.py" in out


def test_registry_push_pull_round_trip(
    docker_client: docker.DockerClient,
    parent_image: str,
    registry: str,
    made_images: list[str],
) -> None:
    import docker

    name = f"{PREFIX}-roundtrip"
    tag = uuid.uuid4().hex[:12]
    ref = f"{registry}/{name}:{tag}"
    made_images.append(ref)
    # A unique label gives a unique image ID, so removing the tag removes the image.
    image, _ = build(docker_client, f"FROM {parent_image}\nLABEL builder.test={tag}\n", ref)
    built_id = image.id

    errors = [
        chunk
        for chunk in docker_client.images.push(f"{registry}/{name}", tag, stream=True, decode=True)
        if "error" in chunk or "errorDetail" in chunk
    ]
    assert errors == []
    image.reload()
    pushed_digests = [d for d in image.attrs["RepoDigests"] if d.startswith(f"{registry}/{name}@")]
    assert len(pushed_digests) == 1
    digest = pushed_digests[0].split("@", 1)[1]

    docker_client.images.remove(ref, force=True)
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get(built_id)

    pulled = docker_client.images.pull(f"{registry}/{name}", tag=tag)
    assert pulled.id == built_id
    assert f"{registry}/{name}@{digest}" in pulled.attrs["RepoDigests"]

    # Leave the registry as it was: delete the manifest (the registry allows deletes).
    request = urllib.request.Request(
        f"http://{registry}/v2/{name}/manifests/{digest}", method="DELETE"
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert resp.status == 202
