"""Images that builder assembles itself: a parent image plus layers it writes, loaded with
`docker load`.

The classic builder of Docker 20.10 (no BuildKit) makes every layer through a container, and
it cannot delete a file without a `RUN` step, which starts one. A layer here is a tar that
builder writes deterministically (`ContextBuilder`), whiteouts included; the image's
configuration is the parent's, with the new layers' diff ids and builder's labels. `docker
load` takes an archive in `docker save`'s format (manifest.json, the configuration, the new
layers' tars). It looks each layer up by its chain id first and reads a layer's tar only when
it does not have it, so the archive holds only the new layers (moby, image/tarexport/load.go).

The same parent, layers and labels give the same configuration, hence the same image id: a
rebuild of the same tree changes nothing.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import tempfile
import time
from collections.abc import Mapping, Sequence
from typing import IO, Any, NamedTuple

from builder.images.context import FIXED_MTIME, SPOOL_BYTES
from builder.images.engine import Engine

# A fixed creation time (the layers' fixed mtime) keeps the configuration, so the id, stable.
CREATED = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(FIXED_MTIME))


class ImageSpec(NamedTuple):
    """What an image on top of this one inherits: its configuration and its layers."""

    config: dict[str, Any]  # the container configuration (`docker inspect`'s "Config")
    architecture: str
    os: str
    diff_ids: tuple[str, ...]

    @classmethod
    def from_inspect(cls, data: Mapping[str, Any]) -> ImageSpec:
        return cls(dict(data.get("Config") or {}), str(data.get("Architecture") or "amd64"),
                   str(data.get("Os") or "linux"),
                   tuple((data.get("RootFS") or {}).get("Layers") or ()))


class Layer(NamedTuple):
    tar: IO[bytes]  # rewound; closed by `load_image`
    diff_id: str  # sha256:<hex> of the tar
    comment: str  # for `docker history`


def load_image(engine: Engine, parent: ImageSpec, layers: Sequence[Layer],
               labels: Mapping[str, str], tag: str) -> tuple[str, ImageSpec]:
    """Load `parent` + `layers` with `labels` as `tag`; return the image id and its spec."""
    spec, config = _configuration(parent, layers, labels)
    image_id = "sha256:" + hashlib.sha256(config).hexdigest()
    try:
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as archive:
            _write_archive(archive, config, image_id, spec, layers, tag)  # type: ignore[arg-type]
            archive.seek(0)
            engine.load(archive, tag)  # type: ignore[arg-type]
    finally:
        for layer in layers:
            layer.tar.close()
    return image_id, spec


def _configuration(parent: ImageSpec, layers: Sequence[Layer],
                   labels: Mapping[str, str]) -> tuple[ImageSpec, bytes]:
    config = {**parent.config, "Labels": dict(sorted(labels.items())), "Image": ""}
    spec = ImageSpec(config, parent.architecture, parent.os,
                     (*parent.diff_ids, *(layer.diff_id for layer in layers)))
    history: list[dict[str, Any]] = [
        {"created": CREATED, "created_by": f"builder: {layer.comment}"} for layer in layers
    ]
    if not layers:
        history.append({"created": CREATED, "created_by": "builder: labels",
                        "empty_layer": True})
    document = {
        "architecture": spec.architecture,
        "os": spec.os,
        "created": CREATED,
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": list(spec.diff_ids)},
        "history": history,
    }
    return spec, json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def _write_archive(archive: IO[bytes], config: bytes, image_id: str, spec: ImageSpec,
                   layers: Sequence[Layer], tag: str) -> None:
    new = {layer.diff_id for layer in layers}
    paths = [f"{diff_id.removeprefix('sha256:')}/layer.tar" for diff_id in spec.diff_ids]
    config_name = image_id.removeprefix("sha256:") + ".json"
    manifest = [{"Config": config_name, "RepoTags": [tag], "Layers": paths}]
    with tarfile.open(fileobj=archive, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        _add(tar, "manifest.json", io.BytesIO(json.dumps(manifest).encode()))
        _add(tar, config_name, io.BytesIO(config))
        written: set[str] = set()
        for layer in layers:
            if layer.diff_id in written or layer.diff_id not in new:
                continue
            written.add(layer.diff_id)
            _add(tar, f"{layer.diff_id.removeprefix('sha256:')}/layer.tar", layer.tar)


def _add(tar: tarfile.TarFile, name: str, data: IO[bytes]) -> None:
    data.seek(0, io.SEEK_END)
    size = data.tell()
    data.seek(0)
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = FIXED_MTIME
    info.mode = 0o644
    tar.addfile(info, data)
