"""The state store: atomic, locked, 0600 secrets, loud about corruption (a temp dir only)."""

from __future__ import annotations

import json
import multiprocessing
import stat

import pytest

from builder.errors import StoreError
from builder.state.store import RepositoryRecord, Store


def add_secret(home, index):
    with Store(home).transaction() as state:
        state.secrets[f"s{index}"] = {"k": f"value-{index}"}


def test_secrets_file_is_private_and_round_trips(tmp_path):
    store = Store(tmp_path)
    with store.transaction() as state:
        state.secrets["gh"] = {"token": "abcd1234"}
        state.repositories["r"] = RepositoryRecord("id1", "r", "git", {"url": "/x"})
    assert stat.S_IMODE(store.secrets_path.stat().st_mode) == 0o600
    assert store.get_secret("gh") == {"token": "abcd1234"}
    assert store.get_repository("r").config == {"url": "/x"}
    assert "abcd1234" not in store.repositories_path.read_text()


def test_a_failed_transaction_writes_nothing(tmp_path):
    store = Store(tmp_path)
    with pytest.raises(RuntimeError), store.transaction() as state:
        state.secrets["x"] = {"k": "v"}
        raise RuntimeError("boom")
    assert not store.secrets_path.exists()


def test_concurrent_writers_lose_nothing(tmp_path):
    processes = [multiprocessing.Process(target=add_secret, args=(tmp_path, i)) for i in range(12)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=60)
    assert all(p.exitcode == 0 for p in processes)
    assert sorted(Store(tmp_path).secret_keys()) == sorted(f"s{i}" for i in range(12))


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        json.dumps({"version": 1}),
        json.dumps([1]),
        json.dumps({"version": 99, "secrets": {}}),
    ],
)
def test_corrupt_file_is_a_clear_error_and_is_kept(tmp_path, content):
    store = Store(tmp_path)
    store.secrets_path.write_text(content)
    with pytest.raises(StoreError) as caught:
        store.get_secret("x")
    assert str(store.secrets_path) in str(caught.value)
    with pytest.raises(StoreError), store.transaction() as state:
        state.secrets["new"] = {"k": "v"}
    assert store.secrets_path.read_text() == content
