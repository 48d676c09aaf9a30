"""Keyed tokens, the key file and rotation."""

from __future__ import annotations

import os
import pickle
import stat
import threading
from pathlib import Path

import pytest

from mcp_notary.errors import ConfigError
from mcp_notary.redact.tokens import (
    KEY_FILE_ENV,
    RedactionKey,
    default_key_path,
    load_or_create_key,
    marker,
    rotate_key,
)


def test_same_value_same_key_same_token() -> None:
    a, b = RedactionKey(b"a" * 32), RedactionKey(b"b" * 32)
    assert a.token("hunter2") == RedactionKey(b"a" * 32).token("hunter2")
    assert a.token("hunter2") != a.token("hunter3")
    assert a.token("hunter2") != b.token("hunter2")
    assert len(a.token("x")) == 12 and int(a.token("x"), 16) >= 0
    assert a.digest(b"x") != a.token("x")  # domain-separated
    assert marker("email", "0123456789ab") == "[REDACTED:email:0123456789ab]"


def test_key_never_prints_itself() -> None:
    secret = bytes(range(32))
    key = RedactionKey(secret)
    for shown in (repr(key), str(key), f"{key}"):
        assert secret.hex() not in shown and key.key_id in shown
    assert secret.hex() not in key.key_id
    with pytest.raises(TypeError):
        pickle.dumps(key)


def test_short_keys_are_refused() -> None:
    with pytest.raises(ConfigError):
        RedactionKey(b"short")


def test_key_file_is_created_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "redaction.key"
    key = load_or_create_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_key(path) == key
    assert [p.name for p in path.parent.iterdir()] == ["redaction.key"]  # no temp file left


def test_concurrent_first_runs_agree_on_one_key(tmp_path: Path) -> None:
    path = tmp_path / "redaction.key"
    keys: list[RedactionKey] = []
    threads = [
        threading.Thread(target=lambda: keys.append(load_or_create_key(path))) for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({k.key_id for k in keys}) == 1


def test_readable_key_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "redaction.key"
    load_or_create_key(path)
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_or_create_key(path)


def test_garbage_key_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "redaction.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"not hex at all\n")
    os.close(fd)
    with pytest.raises(ConfigError, match="not a hex key"):
        load_or_create_key(path)


def test_env_override_of_the_default_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_FILE_ENV, str(tmp_path / "env.key"))
    assert default_key_path() == tmp_path / "env.key"
    monkeypatch.delenv(KEY_FILE_ENV)
    assert default_key_path().name == "redaction.key"


def test_rotation_replaces_the_key_and_reports_ids(tmp_path: Path) -> None:
    path = tmp_path / "redaction.key"
    old = load_or_create_key(path)
    new, fact = rotate_key(path)
    assert new != old and load_or_create_key(path) == new
    assert (fact.old_key_id, fact.new_key_id) == (old.key_id, new.key_id)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    details = fact.details()
    assert details["old_key_id"] == old.key_id and details["key"] == "redaction"
    assert old.token("x") != new.token("x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["redaction.key"]  # old key destroyed


def test_rotation_can_keep_the_old_key(tmp_path: Path) -> None:
    path = tmp_path / "redaction.key"
    old = load_or_create_key(path)
    _new, fact = rotate_key(path, keep_old=True)
    assert fact.retired_path is not None
    assert load_or_create_key(fact.retired_path) == old


def test_rotation_without_a_key_creates_one(tmp_path: Path) -> None:
    new, fact = rotate_key(tmp_path / "k")
    assert fact.old_key_id is None and fact.new_key_id == new.key_id
