"""`builder run --target kubernetes --emit`: the plan as a Kubernetes Job manifest (YAML).

builder does not talk to clusters; it prints manifests for `kubectl apply -f -`. The Job
(`batch/v1`, one pod, no retries) runs the image builder pushed, with the container contract
in its env and an `emptyDir` volume as the download cache. The token reaches the pod as a
Secret mounted read-only at `/run/secrets/builder-token` (the path `BUILDER_TOKEN_FILE`
names), exactly as a local run mounts its token file.

The Secret's name derives from the token's content (`builder-token-<hash>`). Its manifest,
with the token in `stringData`, is printed only with `--include-secret`; otherwise the Job
references a Secret the user creates once, with the `kubectl` command builder shows on
stderr. Nothing else in the output carries the token.

`--node-cache PATH` (opt-in) makes the cache a directory on the node instead (a `hostPath`
volume, created when missing), shared by every pod of every Job that names it on that node:
a node downloads each commit once, and a pod that starts at a newer commit updates from the
newest one there. The entrypoint's file lock keeps concurrent pods to one download. What it
needs (README "Many nodes"): the pods may use hostPath volumes (the Baseline and Restricted
Pod Security Standards forbid them, so the namespace needs the Privileged level), and the
container's user must be able to write there. The kubelet creates a missing directory
owned by root with mode 0755, which builder's images (root by default) can use; for another
user, create it on the nodes with that owner, as hostPath volumes get no `fsGroup`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Any, TextIO

import yaml

from builder.errors import BuilderError, UsageError
from builder.targets import Workload, dns_label, token_secret_name
from builder.targets.local import CACHE_MOUNT, TOKEN_MOUNT, RunOptions

LABEL_PREFIX = "org.builder/"
MANAGED_BY = {"app.kubernetes.io/managed-by": "builder"}
TOKEN_KEY = "token"
TOKEN_VOLUME = "builder-token"
CACHE_VOLUME = "builder-cache"
TOKEN_FILE_MODE = 0o400
TTL_SECONDS_AFTER_FINISHED = 86400
LABEL_VALUE_LIMIT = 63
CHECKSUM_LABEL_DIGITS = 16  # as in the base image's tag; the annotation has all of it


def check_options(options: RunOptions) -> None:
    """Options of a local run that have no portable meaning in a pod (exit 2)."""
    if options.volumes:
        raise UsageError(
            "-v/--volume does not go with --target kubernetes: host paths are not portable to "
            "a cluster; add volumes to the emitted manifest instead"
        )
    if options.network:
        raise UsageError(
            "--network does not go with --target kubernetes: pods use the cluster's network"
        )


def node_cache_path(value: str) -> str:
    """`--node-cache PATH`: an absolute, normalised directory on the node, not the root."""
    import posixpath

    path = posixpath.normpath(value) if value.startswith("/") else ""
    if not path or path == "/" or path.startswith("//") or any(
        part in ("..", ".") for part in value.split("/")
    ):
        raise UsageError(
            f"--node-cache {value!r}: expected an absolute directory on the node, e.g. "
            "/var/cache/builder"
        )
    return path


def job_manifest(workload: Workload, secret_name: str | None,
                 node_cache: str | None = None) -> dict[str, Any]:
    """The Job for a workload; the token, if any, comes from Secret `secret_name`. The cache
    is the pod's own `emptyDir`, or with `node_cache` that directory on the node."""
    spec = workload.spec
    labels = _labels(workload)
    mounts: list[dict[str, Any]] = []
    volumes: list[dict[str, Any]] = []
    if CACHE_MOUNT in {bind["bind"] for bind in spec.volumes.values()}:
        mounts.append({"name": CACHE_VOLUME, "mountPath": CACHE_MOUNT})
        source: dict[str, Any] = (
            {"hostPath": {"path": node_cache, "type": "DirectoryOrCreate"}}
            if node_cache else {"emptyDir": {}}
        )
        volumes.append({"name": CACHE_VOLUME, **source})
    if spec.token:
        if not secret_name:
            raise ValueError("a workload with a token needs the name of its Secret")
        mounts.append(
            {"name": TOKEN_VOLUME, "mountPath": TOKEN_MOUNT, "subPath": TOKEN_KEY, "readOnly": True}
        )
        volumes.append(
            {
                "name": TOKEN_VOLUME,
                "secret": {
                    "secretName": secret_name,
                    "items": [{"key": TOKEN_KEY, "path": TOKEN_KEY}],
                    "defaultMode": TOKEN_FILE_MODE,
                },
            }
        )
    container: dict[str, Any] = {
        "name": dns_label(workload.project),
        "image": spec.image,
        # Content-derived tags (and a digest, when pushed) never change what they name.
        "imagePullPolicy": "IfNotPresent",
        "args": list(spec.command),  # the image's ENTRYPOINT is `builder entrypoint --`
        "env": [{"name": key, "value": value} for key, value in sorted(spec.environment.items())],
    }
    if mounts:
        container["volumeMounts"] = mounts
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "containers": [container],
    }
    if volumes:
        pod["volumes"] = volumes
    job_spec: dict[str, Any] = {
        "backoffLimit": 0,
        "ttlSecondsAfterFinished": TTL_SECONDS_AFTER_FINISHED,
        "template": {"metadata": {"labels": labels}, "spec": pod},
    }
    identity = hashlib.sha256(json.dumps(job_spec, sort_keys=True).encode()).hexdigest()
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": f"{dns_label(workload.project, 50)}-{identity[:12]}",
            "labels": labels,
            "annotations": _annotations(workload),
        },
        "spec": job_spec,
    }


def secret_manifest(name: str, token: str) -> dict[str, Any]:
    """The token as an Opaque Secret (only ever printed on --include-secret)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "labels": {**MANAGED_BY, LABEL_PREFIX + "token": "1"}},
        "type": "Opaque",
        "stringData": {TOKEN_KEY: token},
    }


def create_secret_command(name: str) -> str:
    return f"kubectl create secret generic {name} --from-file={TOKEN_KEY}=TOKEN_FILE"


def render(documents: Sequence[dict[str, Any]]) -> str:
    """YAML documents separated by `---`."""
    return "---\n".join(
        yaml.safe_dump(document, sort_keys=False, default_flow_style=False)
        for document in documents
    )


def emit(
    workload: Workload,
    *,
    include_secret: bool,
    out: TextIO,
    message: Callable[[str], None],
    node_cache: str | None = None,
) -> None:
    """Print the manifests to out; say on stderr (message) how the token reaches the pod."""
    token = workload.token
    secret_name = token_secret_name(token) if token else None
    manifest = job_manifest(workload, secret_name, node_cache)
    job = render([manifest])
    if token and token in job:  # by construction it is not; never print it by accident
        raise BuilderError("internal error: the Job manifest would contain the token")
    if token and secret_name and include_secret:
        # The user asked for the token in the output: the Secret is the one unredacted part.
        out.write(render([secret_manifest(secret_name, token)]) + "---\n" + job)
        message(
            f"builder: the output holds Secret {secret_name} with the token of code repository "
            f"{workload.repository!r}: treat it as a secret"
        )
    else:
        out.write(job)
        if secret_name:
            message(
                f"builder: the Job reads the token of code repository {workload.repository!r} "
                f"from Secret {secret_name}; create it once in the Job's namespace, from a file "
                "that holds the token:"
            )
            message(f"  {create_secret_command(secret_name)}")
            message("builder: (or pass --include-secret to print the Secret with this output)")
    out.flush()
    name = manifest["metadata"]["name"]
    message(f"builder: Job {name}: apply with `kubectl apply -f -`, "
            f"then `kubectl logs -f job/{name}`")


def _labels(workload: Workload) -> dict[str, str]:
    labels = {
        "app.kubernetes.io/name": dns_label(workload.project),
        **MANAGED_BY,
        LABEL_PREFIX + "mode": workload.mode,
        LABEL_PREFIX + "checksum": workload.checksum[:CHECKSUM_LABEL_DIGITS],
    }
    if workload.commit:
        labels[LABEL_PREFIX + "commit"] = workload.commit[:LABEL_VALUE_LIMIT]
    return labels


def _annotations(workload: Workload) -> dict[str, str]:
    annotations = {
        LABEL_PREFIX + "checksum": workload.checksum,
        LABEL_PREFIX + "commit": workload.commit or "",
        LABEL_PREFIX + "repository": workload.repository or "",
        LABEL_PREFIX + "image": workload.spec.image,
    }
    if workload.content_hash:
        annotations[LABEL_PREFIX + "content-hash"] = workload.content_hash
    if workload.run_id:
        annotations[LABEL_PREFIX + "run-id"] = workload.run_id
    return annotations
