"""Deterministic fixture projects for the benchmarks.

Three sizes, generated from a fixed seed, so that every run measures the same bytes:

- small:  50 files, about 0.1 MB of Python source;
- medium: 1,000 files in 50 directories, about 10 MB (a few binary assets);
- large:  5,000 files in 100 directories, about 50 MB, 20 MB of it binary assets.

Source files are Python-like text drawn from a seeded pool of lines (it compresses like source
code does); assets are seeded random bytes (like images: they do not compress). Each project
has `builder.yaml`, a `requirements.txt` of pinned pure-Python packages, a `pyproject.toml`
that names the project and a console script (builder installs it at start), a `.dockerignore`,
the conventional `Dockerfile` (FROM parent, COPY requirements, pip install, COPY . .) and a
`main.py` whose output names the code's version, so a run shows which code it ran.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

REQUIREMENTS = "six==1.16.0\nidna==3.7\npackaging==24.1\n"
MAIN = (
    'import idna, packaging, six\nfrom src import VERSION\nprint("version", VERSION, "{marker}")\n'
)
# The conventional way's Dockerfile, committed with the project as such a project would.
DOCKERFILE = """\
FROM python:3.11-slim
WORKDIR /app/code
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
CMD ["python", "main.py"]
"""
# The project's metadata: its package is `src` (listed, so it lives in the project directory).
PYPROJECT = """\
[project]
name = "bench-app"
version = "1.0.0"
requires-python = ">=3.10"

[project.scripts]
bench-app = "src:main"

[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[tool.setuptools]
packages = ["src"]
"""
# builder.yaml, requirements.txt, pyproject.toml, .dockerignore, Dockerfile, main.py, src/...
TOP_FILES = 7


@dataclass(frozen=True)
class Spec:
    name: str
    files: int  # every file, the top-level ones included
    dirs: int
    text_bytes: int  # mean size of a source file
    assets: int  # binary files
    asset_bytes: int  # mean size of an asset

    def describe(self) -> str:
        return f"{self.name} ({self.files:,} files)"


SPECS: dict[str, Spec] = {
    "small": Spec("small", 50, 5, 2_000, 0, 0),
    "medium": Spec("medium", 1_000, 50, 8_200, 10, 200_000),
    "large": Spec("large", 5_000, 100, 6_200, 50, 400_000),
    # the size of issue 2's status goal; status reads no contents, so the files are small
    "xlarge": Spec("xlarge", 10_000, 200, 2_000, 0, 0),
}


@dataclass(frozen=True)
class Tree:
    """The generated files (relative path -> bytes) and their total size."""

    files: dict[str, bytes]

    @property
    def size(self) -> int:
        return sum(len(data) for data in self.files.values())


def _line_pool(rng: random.Random, count: int = 4_000) -> list[str]:
    words = [
        "value",
        "index",
        "result",
        "config",
        "item",
        "total",
        "count",
        "name",
        "path",
        "data",
        "record",
        "buffer",
        "offset",
        "limit",
        "token",
        "state",
        "model",
        "batch",
    ]
    pool = []
    for _ in range(count):
        a, b, c = rng.choice(words), rng.choice(words), rng.choice(words)
        form = rng.randrange(6)
        if form == 0:
            line = f"def {a}_{b}_{rng.randrange(10_000)}({c}, {b}=None):\n"
        elif form == 1:
            line = f"    {a} = {b} * {rng.randrange(1000)} + {c}.{rng.choice(words)}\n"
        elif form == 2:
            line = f"    if {a} > {rng.randrange(100)} and not {b}:\n        return {c}\n"
        elif form == 3:
            line = f"    # {a} {b} {c}: {rng.choice(words)} of the {rng.choice(words)}\n"
        elif form == 4:
            line = f"    return {{{a!r}: {b}, {c!r}: {rng.random():.6f}}}\n"
        else:
            line = f"\n\nclass {a.title()}{b.title()}{rng.randrange(1000)}:\n    pass\n"
        pool.append(line)
    return pool


def generate(spec: Spec, image_name: str, registry: str | None, seed: int = 7) -> Tree:
    """The project's files; the same spec and seed give the same bytes."""
    rng = random.Random(f"{seed}-{spec.name}")
    pool = _line_pool(rng)
    mean_line = sum(map(len, pool)) / len(pool)
    files: dict[str, bytes] = {
        "builder.yaml": (
            f"name: {image_name}\nrequirements: [requirements.txt]\n"
            + (f"registry: {registry}\n" if registry else "")
            + "command: [python, main.py]\n"
        ).encode(),
        "requirements.txt": REQUIREMENTS.encode(),
        "pyproject.toml": PYPROJECT.encode(),
        ".dockerignore": b".git\n__pycache__\n",
        "Dockerfile": DOCKERFILE.encode(),
        "main.py": MAIN.format(marker="initial").encode(),
        "src/__init__.py": b'VERSION = "initial"\n',
    }
    sources = spec.files - TOP_FILES - spec.assets
    for index in range(sources):
        folder = f"src/pkg{index % spec.dirs:03d}"
        size = int(spec.text_bytes * rng.uniform(0.2, 1.8))
        lines = rng.choices(pool, k=max(1, int(size / mean_line)))
        files[f"{folder}/module_{index:05d}.py"] = (
            f'"""Module {index}."""\n' + "".join(lines)
        ).encode()
    for index in range(spec.assets):
        size = int(spec.asset_bytes * rng.uniform(0.5, 1.5))
        files[f"assets/asset_{index:03d}.bin"] = rng.randbytes(size)
    assert len(files) == spec.files, (len(files), spec.files)
    return Tree(files)


def write(tree: Tree, root: Path) -> None:
    for rel, data in tree.files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
