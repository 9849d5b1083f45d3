"""The Kubernetes Job and Secret manifests: structure, where the token goes, and validity.

Validity is checked against the official Kubernetes OpenAPI schemas shipped by the
`kubernetes-validate` package, in strict mode (no unknown fields), for several versions.
"""

from __future__ import annotations

import io
import json
import re
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from kubernetes_validate.utils import ValidationError, all_versions, major_minor, validate

from builder.errors import UsageError
from builder.targets import Workload, check_options, token_secret_name
from builder.targets import kubernetes as k8s
from builder.targets.local import CACHE_MOUNT, TOKEN_MOUNT, RunOptions, container_spec

TOKEN = "ghp_unit-test-token-0123456789"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
CHECKSUM = "ab" * 32
IMAGE = "127.0.0.1:5000/my_project:base-abababababababab@sha256:" + "cd" * 32
REPOSITORY = {"type": "git", "name": "app", "config": {"url": "https://git.example/app.git"}}
# The oldest and newest schemas the package ships, and one in between.
VERSIONS = sorted({all_versions()[0], all_versions()[len(all_versions()) // 2], all_versions()[-1]})
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def workload(*, mode: str = "reuse", token: str | None = TOKEN, commit: str = COMMIT,
             command: tuple[str, ...] = ()) -> Workload:
    settings = SimpleNamespace(
        command=("python", "main.py"), environment={"GREETING": "hello"},
        code_dir="/app/code", verify_download=False,
    )
    plan = SimpleNamespace(mode=mode, commit=commit, subdirectory="svc")
    spec = container_spec(
        IMAGE, plan, settings, REPOSITORY if mode == "reuse" else None, token,
        RunOptions(command=command), {},
    )
    return Workload(
        project="My_Project", spec=spec, mode=mode, checksum=CHECKSUM,
        commit=commit if mode == "reuse" else None,
        repository="app" if mode == "reuse" else None,
        content_hash="ef" * 32 if mode == "bake" else None,
    )


def emitted(load: Workload, include_secret: bool) -> tuple[str, list[dict[str, Any]], str]:
    out = io.StringIO()
    lines: list[str] = []
    k8s.emit(load, include_secret=include_secret, out=out, message=lines.append)
    text = out.getvalue()
    return text, [doc for doc in yaml.safe_load_all(text) if doc], "\n".join(lines)


def container_of(job: dict[str, Any]) -> dict[str, Any]:
    [container] = job["spec"]["template"]["spec"]["containers"]
    return container


# ---- structure -----------------------------------------------------------------------------


def test_the_job_runs_once_with_the_contract_in_its_env():
    job = k8s.job_manifest(workload(), token_secret_name(TOKEN))
    assert (job["apiVersion"], job["kind"]) == ("batch/v1", "Job")
    assert job["spec"]["backoffLimit"] == 0
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    container = container_of(job)
    assert container["image"] == IMAGE
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert "command" not in container  # the image's entrypoint, `builder entrypoint --`
    assert container["args"] == ["python", "main.py"]
    env = {item["name"]: item["value"] for item in container["env"]}
    assert env == {
        "GREETING": "hello",
        "BUILDER_CODE_DIR": "/app/code",
        "BUILDER_COMMIT": COMMIT,
        "BUILDER_SUBDIRECTORY": "svc",
        "BUILDER_CODE_REPOSITORY": json.dumps(REPOSITORY, sort_keys=True),
        "BUILDER_CACHE_DIR": CACHE_MOUNT,
        "BUILDER_TOKEN_FILE": TOKEN_MOUNT,
    }


def test_the_token_secret_is_a_read_only_file_and_the_cache_an_empty_dir():
    name = token_secret_name(TOKEN)
    job = k8s.job_manifest(workload(), name)
    pod = job["spec"]["template"]["spec"]
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {mount["mountPath"]: mount for mount in container_of(job)["volumeMounts"]}
    token_mount = mounts[TOKEN_MOUNT]
    assert token_mount["readOnly"] is True and token_mount["subPath"] == "token"
    secret = volumes[token_mount["name"]]["secret"]
    assert secret["secretName"] == name
    assert secret["items"] == [{"key": "token", "path": "token"}]
    assert secret["defaultMode"] == 0o400
    assert volumes[mounts[CACHE_MOUNT]["name"]] == {"name": "builder-cache", "emptyDir": {}}


def test_labels_and_annotations_name_the_commit_checksum_and_repository():
    job = k8s.job_manifest(workload(), token_secret_name(TOKEN))
    labels = job["metadata"]["labels"]
    assert labels["org.builder/commit"] == COMMIT
    assert labels["org.builder/checksum"] == CHECKSUM[:16]
    assert labels["app.kubernetes.io/name"] == "my-project"
    assert labels["app.kubernetes.io/managed-by"] == "builder"
    assert job["spec"]["template"]["metadata"]["labels"] == labels
    annotations = job["metadata"]["annotations"]
    assert annotations["org.builder/checksum"] == CHECKSUM
    assert annotations["org.builder/repository"] == "app"
    assert annotations["org.builder/image"] == IMAGE
    assert all(len(value) <= 63 for value in labels.values())


def test_the_job_name_is_a_dns_label_that_changes_with_what_runs():
    names = {
        k8s.job_manifest(workload(commit=commit, command=command), "s")["metadata"]["name"]
        for commit in (COMMIT, "f" * 40)
        for command in ((), ("python", "other.py"))
    }
    assert len(names) == 4
    for name in names:
        assert DNS_LABEL.match(name) and len(name) <= 63, name
    again = k8s.job_manifest(workload(), "s")["metadata"]["name"]
    assert again in names  # deterministic: the same run is the same Job


def test_a_baked_image_needs_no_secret_and_no_cache():
    text, documents, said = emitted(workload(mode="bake", token=TOKEN), include_secret=True)
    [job] = documents
    assert job["kind"] == "Job"
    pod = job["spec"]["template"]["spec"]
    assert "volumes" not in pod and "volumeMounts" not in container_of(job)
    env = {item["name"] for item in container_of(job)["env"]}
    assert env == {"GREETING", "BUILDER_CODE_DIR"}
    assert TOKEN not in text and "kubectl create secret" not in said
    assert job["metadata"]["annotations"]["org.builder/content-hash"] == "ef" * 32


# ---- the token ----------------------------------------------------------------------------


def test_without_include_secret_no_token_is_printed_and_the_command_is_shown():
    text, documents, said = emitted(workload(), include_secret=False)
    assert TOKEN not in text and TOKEN not in said
    assert [doc["kind"] for doc in documents] == ["Job"]
    name = token_secret_name(TOKEN)
    assert f"kubectl create secret generic {name} --from-file=token=" in said
    assert "--include-secret" in said


def test_include_secret_prints_the_secret_first_then_the_job():
    text, documents, said = emitted(workload(), include_secret=True)
    assert [doc["kind"] for doc in documents] == ["Secret", "Job"]
    assert "\n---\n" in text
    secret, job = documents
    name = token_secret_name(TOKEN)
    assert secret["metadata"]["name"] == name
    assert secret["type"] == "Opaque"
    assert secret["stringData"] == {"token": TOKEN}
    assert "data" not in secret
    assert text.count(TOKEN) == 1  # only in the Secret's stringData
    volumes = job["spec"]["template"]["spec"]["volumes"]
    assert {"secretName": name} .items() <= next(
        v["secret"] for v in volumes if "secret" in v
    ).items()
    assert TOKEN not in said and "treat it as a secret" in said


def test_the_secret_name_derives_from_the_token_without_containing_it():
    name = token_secret_name(TOKEN)
    assert name == token_secret_name(TOKEN)
    assert name != token_secret_name(TOKEN + "x")
    assert re.fullmatch(r"builder-token-[0-9a-f]{16}", name)
    assert TOKEN not in name


# ---- options -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "emit", "include_secret", "needle"),
    [
        ("kubernetes", False, False, "kubectl apply -f -"),
        ("local", True, False, "--emit goes with --target kubernetes"),
        ("swarm", False, True, "--include-secret goes with --target kubernetes"),
        ("nomad", False, False, "expected one of local, swarm, kubernetes"),
    ],
)
def test_option_combinations_that_make_no_sense_are_usage_errors(
    target, emit, include_secret, needle
):
    with pytest.raises(UsageError, match=re.escape(needle)) as raised:
        check_options(target, emit=emit, include_secret=include_secret)
    assert raised.value.exit_code == 2


def test_host_volumes_and_networks_do_not_go_to_a_cluster():
    check_options("kubernetes", emit=True, include_secret=False)
    k8s.check_options(RunOptions(environment=("A=1",)))
    with pytest.raises(UsageError, match="-v/--volume"):
        k8s.check_options(RunOptions(volumes=("/tmp:/data",)))
    with pytest.raises(UsageError, match="--network"):
        k8s.check_options(RunOptions(network="host"))


# ---- schema validation -------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("mode", ["reuse", "bake"])
def test_the_manifests_validate_against_the_kubernetes_schema(version, mode):
    assert len(VERSIONS) >= 2
    _, documents, _ = emitted(workload(mode=mode), include_secret=True)
    for document in documents:
        assert validate(document, version, strict=True) == major_minor(version)


@pytest.mark.parametrize("version", VERSIONS)
def test_the_schema_check_catches_a_broken_job(version):
    job = k8s.job_manifest(workload(), token_secret_name(TOKEN))
    job["spec"]["backoffLimit"] = "none"
    with pytest.raises(ValidationError):
        validate(job, version, strict=True)
    job = k8s.job_manifest(workload(), token_secret_name(TOKEN))
    container_of(job)["imagePulPolicy"] = "Always"  # strict: unknown fields are errors
    with pytest.raises(ValidationError):
        validate(job, version, strict=True)


def test_the_run_id_is_an_annotation_of_the_job_and_a_label_of_a_service():
    from dataclasses import replace

    from builder.targets.swarm import LABEL_PREFIX as SWARM_PREFIX
    from builder.targets.swarm import service_plan

    plain = workload()
    recorded = replace(plain, run_id="0123456789abcdef" * 2)
    secret = token_secret_name(TOKEN)
    manifest, unrecorded = k8s.job_manifest(recorded, secret), k8s.job_manifest(plain, secret)
    assert manifest["metadata"]["annotations"]["org.builder/run-id"] == recorded.run_id
    assert manifest["metadata"]["name"] == unrecorded["metadata"]["name"]
    assert "org.builder/run-id" not in unrecorded["metadata"]["annotations"]
    assert service_plan(recorded).labels[SWARM_PREFIX + "run-id"] == recorded.run_id
    assert TOKEN not in json.dumps(manifest["metadata"])


# ---- the node-level cache (opt-in) -------------------------------------------------------


def volumes_of(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {volume["name"]: volume for volume in job["spec"]["template"]["spec"]["volumes"]}


def test_by_default_each_pod_has_a_cache_of_its_own():
    job = k8s.job_manifest(workload(), token_secret_name(TOKEN))
    assert volumes_of(job)[k8s.CACHE_VOLUME] == {"name": k8s.CACHE_VOLUME, "emptyDir": {}}


@pytest.mark.parametrize("version", VERSIONS)
def test_a_node_cache_is_a_host_path_that_every_pod_on_the_node_shares(version):
    out = io.StringIO()
    k8s.emit(workload(), include_secret=False, out=out, message=lambda _: None,
             node_cache="/var/cache/builder")
    [job] = [doc for doc in yaml.safe_load_all(out.getvalue()) if doc]
    cache = volumes_of(job)[k8s.CACHE_VOLUME]
    assert cache == {"name": k8s.CACHE_VOLUME,
                     "hostPath": {"path": "/var/cache/builder", "type": "DirectoryOrCreate"}}
    mounts = {m["name"]: m for m in container_of(job)["volumeMounts"]}
    assert mounts[k8s.CACHE_VOLUME] == {"name": k8s.CACHE_VOLUME, "mountPath": CACHE_MOUNT}
    assert validate(job, version, strict=True) == major_minor(version)
    # another cache is another Job: the name follows the spec
    assert job["metadata"]["name"] != k8s.job_manifest(workload(), token_secret_name(TOKEN))[
        "metadata"]["name"]


def test_a_baked_job_needs_no_cache_even_with_a_node_cache():
    job = k8s.job_manifest(workload(mode="bake", token=None), None, "/var/cache/builder")
    assert "volumes" not in job["spec"]["template"]["spec"]


@pytest.mark.parametrize(("value", "path"), [
    ("/var/cache/builder", "/var/cache/builder"),
    ("/var/cache/builder/", "/var/cache/builder"),
    ("/mnt//fast/builder", "/mnt/fast/builder"),
])
def test_node_cache_paths(value, path):
    assert k8s.node_cache_path(value) == path


@pytest.mark.parametrize("value", ["", "cache", "./cache", "/", "//x", "/var/../etc",
                                   "/var/./cache", "~/cache"])
def test_a_node_cache_must_be_an_absolute_directory(value):
    with pytest.raises(UsageError, match=re.escape(f"--node-cache {value!r}")) as raised:
        k8s.node_cache_path(value)
    assert raised.value.exit_code == 2
