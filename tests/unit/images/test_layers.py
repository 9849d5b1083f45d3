"""A hand-made image's configuration and archive (plain data: no engine)."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

from builder.images.layers import CREATED, ImageSpec, Layer, _configuration, _write_archive

PARENT = ImageSpec({"Env": ["A=1"], "Entrypoint": ["/e"], "Labels": {"old": "1"},
                    "Image": "sha256:parent"}, "amd64", "linux", ("sha256:" + "1" * 64,))


def layer(content: bytes, comment: str = "files") -> Layer:
    return Layer(io.BytesIO(content), "sha256:" + hashlib.sha256(content).hexdigest(), comment)


def test_the_configuration_inherits_the_parent_and_appends_the_new_layers() -> None:
    new = layer(b"tar")
    spec, config = _configuration(PARENT, [new], {"role": "code"})
    document = json.loads(config)
    assert spec.diff_ids == (*PARENT.diff_ids, new.diff_id)
    assert document["rootfs"] == {"type": "layers", "diff_ids": list(spec.diff_ids)}
    assert document["config"]["Entrypoint"] == ["/e"] and document["config"]["Env"] == ["A=1"]
    assert document["config"]["Labels"] == {"role": "code"}  # the given labels, complete
    assert document["created"] == CREATED == "1980-01-01T00:00:00Z"
    assert [entry["created_by"] for entry in document["history"]] == ["builder: files"]


def test_the_same_inputs_give_the_same_image_id_and_any_change_another() -> None:
    first = _configuration(PARENT, [layer(b"tar")], {"b": "2", "a": "1"})[1]
    assert first == _configuration(PARENT, [layer(b"tar")], {"a": "1", "b": "2"})[1]
    assert first != _configuration(PARENT, [layer(b"other")], {"a": "1", "b": "2"})[1]
    assert first != _configuration(PARENT, [layer(b"tar")], {"a": "1"})[1]


def test_an_image_of_labels_only_adds_no_layer() -> None:
    spec, config = _configuration(PARENT, [], {"role": "code"})
    assert spec.diff_ids == PARENT.diff_ids
    assert json.loads(config)["history"][0]["empty_layer"] is True


def test_the_archive_holds_the_manifest_the_configuration_and_only_new_layers() -> None:
    new = layer(b"the layer's tar")
    spec, config = _configuration(PARENT, [new], {})
    image_id = "sha256:" + hashlib.sha256(config).hexdigest()
    archive = io.BytesIO()
    _write_archive(archive, config, image_id, spec, [new], "demo:code-1")
    with tarfile.open(fileobj=io.BytesIO(archive.getvalue())) as tar:
        names = tar.getnames()
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    hexes = [diff_id.removeprefix("sha256:") for diff_id in spec.diff_ids]
    assert manifest == [{"Config": image_id[7:] + ".json", "RepoTags": ["demo:code-1"],
                         "Layers": [f"{h}/layer.tar" for h in hexes]}]
    # The parent's layer is looked up by the engine, not sent.
    assert names == ["manifest.json", image_id[7:] + ".json", f"{hexes[1]}/layer.tar"]
