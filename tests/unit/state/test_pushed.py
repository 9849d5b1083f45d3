"""What builder remembers a registry has (builder.state.pushed): plain files, no registry."""

from __future__ import annotations

import json
from pathlib import Path

from builder.state import pushed

REF = "127.0.0.1:5000/app:base-0123456789abcdef"
IMAGE = "sha256:" + "a" * 64


def test_an_image_seen_lately_is_known(tmp_path: Path) -> None:
    assert not pushed.known(tmp_path, REF, IMAGE)
    pushed.remember(tmp_path, REF, IMAGE, now=1000.0)
    assert pushed.known(tmp_path, REF, IMAGE, now=1000.0 + pushed.FRESH_SECONDS - 1)
    entry = pushed._entry(tmp_path, REF)
    assert entry.stat().st_mode & 0o777 == 0o600 and REF in entry.read_text()


def test_a_stale_record_or_another_image_is_not_known(tmp_path: Path) -> None:
    pushed.remember(tmp_path, REF, IMAGE, now=1000.0)
    assert not pushed.known(tmp_path, REF, IMAGE, now=1000.0 + pushed.FRESH_SECONDS)
    assert not pushed.known(tmp_path, REF, IMAGE, now=999.0)  # a clock that went back
    assert not pushed.known(tmp_path, REF, "sha256:" + "b" * 64, now=1000.0)
    assert not pushed.known(tmp_path, REF + "x", IMAGE, now=1000.0)
    assert not pushed.known(tmp_path, REF, None, now=1000.0)


def test_damaged_or_unwritable_records_are_misses(tmp_path: Path) -> None:
    entry = pushed._entry(tmp_path, REF)
    entry.parent.mkdir(parents=True)
    odd = json.dumps({"ref": REF, "image": IMAGE, "seen": "x"})
    for text in ("", "{", "[]", '{"ref": 1}', odd):
        entry.write_text(text)
        assert not pushed.known(tmp_path, REF, IMAGE)
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    pushed.remember(blocked, REF, IMAGE)  # cannot write: only a miss later
    assert not pushed.known(blocked, REF, IMAGE)
    pushed.remember(tmp_path, REF, None)
    assert entry.read_text() == odd  # nothing to remember: the record is left as it was
