"""`{{name.key}}` references, their resolution, and the one redaction helper.

A reference is resolved only where its value is used. `{{env.NAME}}` reads the environment
variable NAME, so CI needs no secret store. Every value that passes through `resolve` (and
every value the store loads) is remembered, and `redact` replaces it in any text that is
about to be shown: messages, log lines, errors, listings.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Mapping

from builder.errors import SecretReferenceError, UsageError

ENV_NAMESPACE = "env"
MASK = "***"
_REFERENCE = re.compile(r"^\{\{\s*([A-Za-z0-9_\-]+)\.([A-Za-z0-9_\-]+)\s*\}\}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]*$")
_KEY = re.compile(r"^[A-Za-z0-9_\-]+$")
# Credentials that may sit inside text we did not produce (git errors, URLs, headers). Each
# pattern comes with the (lowercase) text it cannot match without, so that long text such as
# a listing of run records is scanned only by the patterns that can match it.
_PATTERNS = (
    (re.compile(r"([a-zA-Z][a-zA-Z0-9+.\-]*://[^/@\s:]*:)[^@\s/]+@"), r"\1" + MASK + "@",
     ("://", "@")),
    (re.compile(r"(?i)(https?://)[^/@\s:]+@"), r"\1" + MASK + "@", ("://", "@")),
    (re.compile(r"(?i)(authorization:\s*(?:token|bearer|basic)\s+)[^\s\"']+"), r"\1" + MASK,
     ("authorization",)),
    (re.compile(r"(?i)((?:private|job)-token:\s*)[^\s\"']+"), r"\1" + MASK, ("-token",)),
    (re.compile(r"(?i)(extraheader=\S*?\s*(?:token|bearer|basic)\s+)[^\s\"']+"), r"\1" + MASK,
     ("extraheader=",)),
)
_MIN_SECRET_LENGTH = 4

_known: set[str] = set()
_lock = threading.Lock()


def is_reference(value: str) -> bool:
    return bool(_REFERENCE.match(value))


def parse_reference(value: str) -> tuple[str, str] | None:
    """Return (secret name, key) if value is a whole `{{name.key}}` reference."""
    match = _REFERENCE.match(value)
    return (match.group(1), match.group(2)) if match else None


def reference(name: str, key: str) -> str:
    return "{{" + f"{name}.{key}" + "}}"


def validate_name(name: str, what: str = "secret name") -> str:
    if not _NAME.match(name) or name == ENV_NAMESPACE:
        raise UsageError(
            f"{what} {name!r} is invalid: use letters, digits, '-' and '_'"
            + (f" ('{ENV_NAMESPACE}' is reserved)" if name == ENV_NAMESPACE else "")
        )
    return name


def validate_key(key: str) -> str:
    if not _KEY.match(key):
        raise UsageError(f"secret key {key!r} is invalid: use letters, digits, '-' and '_'")
    return key


def remember(value: str | None) -> None:
    """Make `redact` mask this value from now on."""
    if value and len(value) >= _MIN_SECRET_LENGTH:
        if not _known:
            from builder.state import coredump

            coredump.disable()  # from now on a core dump would hold the secret
        with _lock:
            _known.add(value)


def holds_secret(text: str) -> bool:
    """Whether `text` contains a secret value builder has seen."""
    with _lock:
        values = list(_known)
    return any(value in text for value in values)


def redact(text: str) -> str:
    """Mask every known secret value and every credential-shaped fragment in text."""
    with _lock:
        values = sorted(_known, key=len, reverse=True)
    for value in values:
        if value in text:
            text = text.replace(value, MASK)
    lowered = text.lower()  # masking only inserts MASK: what it found stays findable
    for pattern, replacement, needs in _PATTERNS:
        if all(need in lowered for need in needs):
            text = pattern.sub(replacement, text)
    return text


SecretLookup = Callable[[str], Mapping[str, str] | None]


def resolve(
    value: str | None, lookup: SecretLookup, environ: Mapping[str, str] | None = None
) -> str | None:
    """Resolve a `{{name.key}}` or `{{env.NAME}}` reference; return literals unchanged.

    `lookup(name)` returns a secret's keys or None (`store.stored_secret` reads the store
    in $BUILDER_HOME). A reference to something that does not exist is a `UsageError`.
    """
    if value is None:
        return None
    parsed = parse_reference(value)
    if parsed is None:
        remember(value)
        return value
    name, key = parsed
    if name == ENV_NAMESPACE:
        env = os.environ if environ is None else environ
        if key not in env:
            raise SecretReferenceError(f"{value}: environment variable {key} is not set")
        resolved = env[key]
    else:
        secret = lookup(name)
        if secret is None:
            raise SecretReferenceError(
                f"{value}: no secret named {name!r} "
                f"(create it with `builder secret create {name} --{key}=...`)"
            )
        if key not in secret:
            keys = ", ".join(sorted(secret)) or "none"
            raise SecretReferenceError(
                f"{value}: secret {name!r} has no key {key!r} (keys: {keys})"
            )
        resolved = secret[key]
    remember(resolved)
    return resolved
