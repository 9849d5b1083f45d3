"""uv's export, normalized: one requirement per line, sorted, hashes all or nothing."""

from __future__ import annotations

from builder.project.uvlock import normalize_export

EXPORT = """idna==3.20 \\
    --hash=sha256:bbb \\
    --hash=sha256:aaa
# via something
Six==1.17.0 ; sys_platform == 'linux' \\
    --hash=sha256:ccc
attrs==26.1.0 \\
    --hash=sha256:ddd
"""


def test_continuations_are_joined_sorted_by_name_and_hashes_sorted():
    assert normalize_export(EXPORT) == [
        "attrs==26.1.0 --hash=sha256:ddd",
        "idna==3.20 --hash=sha256:aaa --hash=sha256:bbb",
        "Six==1.17.0 ; sys_platform == 'linux' --hash=sha256:ccc",
    ]


def test_a_requirement_without_hashes_drops_them_all():
    text = EXPORT + "tool @ git+https://example.invalid/tool@0123abc\n"
    assert normalize_export(text) == [
        "attrs==26.1.0", "idna==3.20", "Six==1.17.0 ; sys_platform == 'linux'",
        "tool @ git+https://example.invalid/tool@0123abc"]


def test_the_same_set_formatted_otherwise_is_the_same_text():
    other = ("attrs==26.1.0 --hash=sha256:ddd\nSix==1.17.0 ; sys_platform == 'linux' "
             "--hash=sha256:ccc\nidna==3.20   --hash=sha256:aaa \\\n  --hash=sha256:bbb\n")
    assert normalize_export(other) == normalize_export(EXPORT)
