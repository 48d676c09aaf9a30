"""The checkpoint signing key file and trusted-keys files."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from mcp_notary.errors import ConfigError
from mcp_notary.ledger.keys import (
    SIGNING_KEY_ENV,
    default_signing_key_path,
    load_or_create_signing_key,
    load_trusted_keys,
    parse_trusted_keys,
    vkey_path_for,
)
from mcp_notary.ledger.signing import KeyFileError, NoteSigner


def test_first_use_creates_a_private_key_and_its_vkey_beside_it(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "checkpoint.key"
    signer = load_or_create_signing_key(path, "mcp-notary/test")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert vkey_path_for(path) == tmp_path / "keys" / "checkpoint.vkey"
    assert vkey_path_for(path).read_text().strip() == signer.vkey
    again = load_or_create_signing_key(path)
    assert again.vkey == signer.vkey  # loaded, not replaced


def test_concurrent_first_starts_agree_on_one_key(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.key"
    found: list[str] = []
    threads = [
        threading.Thread(target=lambda: found.append(load_or_create_signing_key(path).vkey))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(found) == 8 and len(set(found)) == 1


def test_a_readable_key_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.key"
    load_or_create_signing_key(path)
    os.chmod(path, 0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_or_create_signing_key(path)


def test_default_path_honours_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SIGNING_KEY_ENV, str(tmp_path / "k.key"))
    assert default_signing_key_path() == tmp_path / "k.key"
    monkeypatch.delenv(SIGNING_KEY_ENV)
    assert default_signing_key_path().name == "checkpoint.key"


def test_trusted_keys_file_with_validity_windows(tmp_path: Path) -> None:
    old, new = NoteSigner.generate("log"), NoteSigner.generate("log")
    text = (
        "# rotated on 2026-06-01\n"
        f"{old.vkey} not-after=2026-06-01T00:00:00Z\n"
        f"\n{new.vkey}   not-before=2026-05-31T23:00:00+00:00  # overlap\n"
    )
    (path := tmp_path / "trusted").write_text(text)
    first, second = load_trusted_keys(path)
    assert first.verifier == old.verifier and second.verifier == new.verifier
    assert first.not_after == "2026-06-01T00:00:00.000000Z" and first.not_before is None
    assert second.not_before == "2026-05-31T23:00:00.000000Z"
    assert first.valid_at("2026-05-01T00:00:00.000000Z")
    assert not first.valid_at("2026-07-01T00:00:00.000000Z")
    assert not second.valid_at("2026-05-01T00:00:00.000000Z")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not-a-vkey", "vkey"),
        ("{vkey} expires=2026-01-01", "unknown option"),
        ("{vkey} not-after=yesterday", "RFC 3339"),
    ],
)
def test_bad_trusted_key_lines_are_config_errors(line: str, message: str) -> None:
    vkey = NoteSigner.generate("log").vkey
    with pytest.raises(ConfigError, match=message):
        parse_trusted_keys(line.format(vkey=vkey), "f")


def test_an_empty_trusted_keys_file_is_refused(tmp_path: Path) -> None:
    (path := tmp_path / "empty").write_text("# nothing\n")
    with pytest.raises(ConfigError, match="no vkey"):
        load_trusted_keys(path)


def test_rotation_retires_the_old_key_into_a_trusted_keys_file(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from mcp_notary.ledger.keys import rotate_signing_key

    path = tmp_path / "checkpoint.key"
    old = load_or_create_signing_key(path, "mcp-notary/h")
    now = datetime(2027, 1, 1, tzinfo=UTC)
    rotation = rotate_signing_key(path, grace_s=3600, now=now)
    new = load_or_create_signing_key(path)
    assert new.vkey != old.vkey and new.name == old.name
    assert vkey_path_for(path).read_text().strip() == new.vkey
    assert (
        rotation.retired_key.exists() and stat.S_IMODE(rotation.retired_key.stat().st_mode) == 0o600
    )
    keys = load_trusted_keys(rotation.trusted_keys)
    assert [(k.verifier.vkey, k.not_before, k.not_after) for k in keys] == [
        (old.vkey, None, "2027-01-01T01:00:00.000000Z"),
        (new.vkey, "2027-01-01T00:00:00.000000Z", None),
    ]
    # A second rotation narrows the (then) current key and keeps the history.
    rotate_signing_key(path, grace_s=0, now=datetime(2027, 6, 1, tzinfo=UTC))
    assert len(load_trusted_keys(rotation.trusted_keys)) == 3
