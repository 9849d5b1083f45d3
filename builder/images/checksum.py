"""The base image's checksum: a pure function of its inputs.

Every input of the base image is here, as content, and nothing else: no path of the host,
no mtime. Collections whose order has no effect on the image are sorted before hashing.
`builder.images.inputs` gathers the inputs from the project, the engine and builder itself.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

CHECKSUM_VERSION = 2


@dataclass(frozen=True)
class BaseInputs:
    parent_digest: str  # the parent image's content-addressed id (sha256:...)
    requirements: tuple[str, ...]  # the requirement lines, in order (images.requirements)
    apt_packages: tuple[str, ...]  # the user's and the repository types' packages
    environment: tuple[tuple[str, str], ...]
    template: str  # the rendered Dockerfile part and install step
    builder_version: str  # version plus a hash of the package's files
    python_version: str  # the parent image's Python, e.g. "3.11.2"
    platform: str  # the parent image's platform, e.g. "linux/x86_64 glibc 2.36"
    custom_sources: tuple[str, ...] = ()  # sha256 of each custom repository class's module
    runtime_needs: tuple[str, ...] = ()  # e.g. "extra:github", "apt:git", "pip:foo>=1"
    installer: str = "uv"  # what installs the requirements

    def canonical(self) -> dict[str, object]:
        return {
            "version": CHECKSUM_VERSION,
            "parent_digest": self.parent_digest,
            # the order of requirement lines is kept: it can steer a resolver
            "requirements": list(self.requirements),
            "apt_packages": sorted(set(self.apt_packages)),
            "environment": sorted(dict(self.environment).items()),
            "template": self.template,
            "builder_version": self.builder_version,
            "python_version": self.python_version,
            "platform": self.platform,
            "custom_sources": sorted(set(self.custom_sources)),
            "runtime_needs": sorted(set(self.runtime_needs)),
            "installer": self.installer,
        }


def checksum(inputs: BaseInputs) -> str:
    """A sha256 hex digest over the canonical form of the inputs."""
    text = json.dumps(inputs.canonical(), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def code_key(base_checksum: str, content_hash: str, code_dir: str, layout: str) -> str:
    """A baked image's key: the shipped tree, where it goes, the base it sits on, and the
    layout of its layers."""
    text = json.dumps({"version": CHECKSUM_VERSION, "base": base_checksum,
                       "content": content_hash, "code_dir": code_dir,
                       "layout": layout}, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
