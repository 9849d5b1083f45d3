"""What `builder build` hands to the CI system: step outputs, a job summary, a dotenv file.

- `GITHUB_OUTPUT` (GitHub Actions sets it): `key=value` lines appended for each output; a
  value with a line break uses the `key<<DELIMITER` form.
- `GITHUB_STEP_SUMMARY` (GitHub Actions): a short markdown summary appended.
- `--dotenv FILE` (GitLab's `artifacts:reports:dotenv`): the same keys, `key=value`, one file
  written atomically. GitLab does not accept line breaks in dotenv values.

The keys are those of `OUTPUT_KEYS`. `builder_commit` and `builder_code_repository` are the
container contract for another job that runs the image with `docker run` (they are empty
when the code is baked into the image, which then needs no contract). No value holds a
secret, and each one still passes through `redact`.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from builder.errors import BuilderError, UsageError
from builder.state.atomic import atomic_write_text
from builder.state.secrets import redact

GITHUB_OUTPUT = "GITHUB_OUTPUT"
GITHUB_STEP_SUMMARY = "GITHUB_STEP_SUMMARY"
OUTPUT_KEYS = (
    "mode",
    "image",
    "base_image",
    "commit",
    "checksum",
    "code_repository",
    "subdirectory",
    "builder_commit",
    "builder_code_repository",
)


def outputs(result: Mapping[str, Any], repository_spec: Mapping[str, Any] | None) -> dict[str, str]:
    """The output values for a build's JSON object (`BuildResult.to_json()`)."""
    reuse = result.get("mode") == "reuse"
    values = {
        "mode": result.get("mode"),
        "image": result.get("image"),
        "base_image": result.get("base_image"),
        "commit": result.get("commit"),
        "checksum": result.get("checksum"),
        "code_repository": result.get("code_repository"),
        "subdirectory": result.get("subdirectory"),
        "builder_commit": result.get("commit") if reuse else "",
        "builder_code_repository": (
            json.dumps(dict(repository_spec), sort_keys=True, separators=(",", ":"))
            if reuse and repository_spec
            else ""
        ),
    }
    return {key: redact(str(values[key] or "")) for key in OUTPUT_KEYS}


def github_output_lines(values: Mapping[str, str]) -> str:
    text = []
    for key, value in values.items():
        if "\n" in value or "\r" in value:
            delimiter = f"ghadelimiter_{uuid.uuid4()}"
            text.append(f"{key}<<{delimiter}\n{value}\n{delimiter}\n")
        else:
            text.append(f"{key}={value}\n")
    return "".join(text)


def dotenv_lines(values: Mapping[str, str]) -> str:
    for key, value in values.items():
        if "\n" in value or "\r" in value:
            raise UsageError(f"dotenv value of {key!r} has a line break, which GitLab rejects")
    return "".join(f"{key}={value}\n" for key, value in values.items())


def summary_markdown(result: Mapping[str, Any]) -> str:
    """A few lines for the job's summary page."""
    mode = result.get("mode")
    image = result.get("image") or ""
    commit = str(result.get("commit") or "")
    rows = [
        ("mode", "reuse: the container downloads the code at the commit"
         if mode == "reuse" else "bake: the code is in the image"),
        ("image", f"`{image}`"),
        ("base image", f"`{result.get('base_image') or ''}`"),
        ("commit", f"`{commit}`" if commit else "(none)"),
        ("code repository", str(result.get("code_repository") or "(none)")),
        ("built", _refs(result.get("built") or [])),
        ("pushed", _refs(result.get("pushed") or [])),
        ("time", f"{float(result.get('seconds') or 0):.1f} s"),
    ]
    lines = [f"### builder: {mode} `{image}`", "", "| | |", "|---|---|"]
    lines += [f"| {key} | {_cell(value)} |" for key, value in rows]
    reasons = list(result.get("reasons") or [])
    if reasons:
        lines += ["", "Why the code was baked:", ""]
        lines += [f"- {_cell(reason)}" for reason in reasons]
    return redact("\n".join(lines)) + "\n\n"


def publish(
    result: Mapping[str, Any],
    repository_spec: Mapping[str, Any] | None,
    *,
    dotenv: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[str]:
    """Write every output the environment (or `--dotenv`) asks for; return what was written,
    as `$GITHUB_OUTPUT`, `$GITHUB_STEP_SUMMARY` and the dotenv path."""
    env = os.environ if environ is None else environ
    values = outputs(result, repository_spec)
    written = []
    for name, text in (
        (GITHUB_OUTPUT, github_output_lines(values)),
        (GITHUB_STEP_SUMMARY, summary_markdown(result)),
    ):
        if env.get(name):
            _append(Path(env[name]), text, f"${name}")
            written.append(f"${name}")
    if dotenv is not None:
        try:
            atomic_write_text(dotenv, dotenv_lines(values))
        except OSError as exc:
            raise UsageError(f"--dotenv {dotenv}: cannot write it: {exc.strerror}") from None
        written.append(str(dotenv))
    return written


def _append(path: Path, text: str, what: str) -> None:
    try:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        raise BuilderError(f"{what} ({path}): cannot append to it: {exc.strerror}") from None


def _refs(refs: Sequence[str]) -> str:
    return ", ".join(f"`{ref}`" for ref in refs) or "nothing"


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")
