"""References, resolution and redaction (no store on disk)."""

from __future__ import annotations

import pytest

from builder.errors import SecretReferenceError
from builder.state import secrets


def lookup(name):
    return {"gh": {"pa_token": "ghp_resolvedvalue"}}.get(name)


def test_reference_parsing():
    assert secrets.parse_reference("{{gh.pa_token}}") == ("gh", "pa_token")
    assert secrets.parse_reference("{{ gh.pa_token }}") == ("gh", "pa_token")
    assert secrets.parse_reference("literal") is None
    assert secrets.parse_reference("x{{gh.t}}") is None


def test_resolve_store_env_and_literal():
    assert secrets.resolve("{{gh.pa_token}}", lookup) == "ghp_resolvedvalue"
    assert (
        secrets.resolve("{{env.TOKEN_X}}", lookup, environ={"TOKEN_X": "from-env-123"})
        == "from-env-123"
    )
    assert secrets.resolve("plain-literal-token", lookup) == "plain-literal-token"
    assert secrets.resolve(None, lookup) is None


@pytest.mark.parametrize(
    ("ref", "fragment"),
    [
        ("{{nope.key}}", "no secret named 'nope'"),
        ("{{gh.other}}", "has no key 'other' (keys: pa_token)"),
        ("{{env.MISSING_VAR_X}}", "environment variable MISSING_VAR_X is not set"),
    ],
)
def test_unknown_references_are_usage_errors(ref, fragment):
    with pytest.raises(SecretReferenceError) as caught:
        secrets.resolve(ref, lookup, environ={})
    assert fragment in str(caught.value)
    assert caught.value.exit_code == 2


def test_redact_masks_resolved_values_and_credential_shapes():
    secrets.resolve("{{gh.pa_token}}", lookup)
    text = (
        "failed with ghp_resolvedvalue; url https://user:hunter2xyz@host/r.git; "
        "https://ghs_abcdef@github.com/o/r; Authorization: Bearer abc.def; PRIVATE-TOKEN: glpat-1"
    )
    masked = secrets.redact(text)
    for leaked in ("ghp_resolvedvalue", "hunter2xyz", "ghs_abcdef", "abc.def", "glpat-1"):
        assert leaked not in masked
    assert secrets.redact("git@github.com:o/r") == "git@github.com:o/r"


def test_names_are_validated():
    with pytest.raises(Exception, match="reserved"):
        secrets.validate_name("env")
    with pytest.raises(Exception, match="invalid"):
        secrets.validate_name("a b")
