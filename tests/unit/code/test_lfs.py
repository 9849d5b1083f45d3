"""Git LFS pointers (builder.code.lfs): recognising one, matching content against it."""

from __future__ import annotations

import hashlib
from pathlib import Path

from builder.code.lfs import Pointer, content_matches, parse_pointer, pointer_text

CONTENT = b"weights\x00" * 100


def test_a_pointer_is_recognised_with_its_oid_and_size() -> None:
    text = pointer_text(CONTENT)
    assert text == (b"version https://git-lfs.github.com/spec/v1\n"
                    b"oid sha256:" + hashlib.sha256(CONTENT).hexdigest().encode() +
                    b"\nsize 800\n")
    assert parse_pointer(text) == Pointer(hashlib.sha256(CONTENT).hexdigest(), 800)


def test_other_data_is_no_pointer() -> None:
    text = pointer_text(CONTENT)
    assert parse_pointer(b"") is None
    assert parse_pointer(b"print('hello')\n") is None
    assert parse_pointer(text.replace(b"sha256:", b"sha1:")) is None
    assert parse_pointer(text.replace(b"size 800", b"size many")) is None
    assert parse_pointer(text + b"x" * 1024) is None  # pointers are at most 1024 bytes


def test_content_matches_only_the_exact_content(tmp_path: Path) -> None:
    pointer = parse_pointer(pointer_text(CONTENT))
    assert pointer is not None
    (tmp_path / "model.bin").write_bytes(CONTENT)
    assert content_matches(tmp_path / "model.bin", pointer)
    (tmp_path / "same-size.bin").write_bytes(CONTENT[:-1] + b"!")
    assert not content_matches(tmp_path / "same-size.bin", pointer)
    (tmp_path / "pointer.bin").write_bytes(pointer_text(CONTENT))
    assert not content_matches(tmp_path / "pointer.bin", pointer)
    (tmp_path / "link.bin").symlink_to("model.bin")
    assert not content_matches(tmp_path / "link.bin", pointer)
    assert not content_matches(tmp_path / "missing.bin", pointer)
