"""Tests for mcp_notary.ledger.signing: interop vectors, verification rules, key files."""

from __future__ import annotations

import base64
import copy
import hashlib
import os
import pickle
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mcp_notary.errors import ConfigError, IntegrityError
from mcp_notary.ledger import signing
from mcp_notary.ledger.checkpoint import Checkpoint, NoteFormatError, NoteSignature, SignedNote
from mcp_notary.ledger.signing import (
    SIGNATURE_TYPE_ED25519,
    BadSignatureError,
    KeyFileError,
    KeyFormatError,
    NoteSigner,
    NoteVerifier,
    SignatureError,
    UnknownKeyError,
    generate_key_file,
    key_id,
    load_signer,
    load_verifier,
    sign_note,
    verify_note,
    write_vkey,
)

# golang.org/x/mod/sumdb/note example_test.go.
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    b"If you think cryptography is the answer to your problem,\n"
    b"then you don't know what your problem is.\n"
)
GO_SIGNATURE_LINE = (
    "\u2014 PeterNeumann "
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
GO_NOTE = GO_TEXT + b"\n" + GO_SIGNATURE_LINE.encode()
GO_SKEY_MATERIAL = GO_SKEY.split("+", 4)[4]  # base64(0x01 || seed): the secret
GO_SEED = base64.b64decode(GO_SKEY_MATERIAL)[1:]

# c2sp.org/signed-note example.
C2SP_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
C2SP_NOTE = (
    "This is an example message.\n"
    "\n"
    "\u2014 example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFX"
    "mRKuwHjG1Yu72IneyaQM=\n"
).encode()


@pytest.fixture
def signer() -> NoteSigner:
    return NoteSigner.generate("audit.example/mcp/test")


def test_public_api_is_exact() -> None:
    assert sorted(signing.__all__) == sorted(
        [
            "SIGNATURE_TYPE_ED25519",
            "BadSignatureError",
            "KeyFileError",
            "KeyFormatError",
            "NoteSigner",
            "NoteVerifier",
            "SignatureError",
            "UnknownKeyError",
            "generate_key_file",
            "key_id",
            "load_signer",
            "load_verifier",
            "sign_note",
            "verify_note",
            "write_vkey",
        ]
    )
    assert issubclass(UnknownKeyError, SignatureError)
    assert issubclass(BadSignatureError, SignatureError)
    assert issubclass(SignatureError, IntegrityError)
    assert not issubclass(UnknownKeyError, BadSignatureError)
    assert not issubclass(BadSignatureError, UnknownKeyError)
    assert issubclass(KeyFormatError, ConfigError) and issubclass(KeyFormatError, ValueError)
    assert issubclass(KeyFileError, ConfigError)


# --------------------------------------------------------------------------------------
# Interoperability


def test_go_signer_reproduces_go_note_byte_for_byte() -> None:
    s = NoteSigner.from_private_key_string(GO_SKEY)
    assert s.name == "PeterNeumann"
    assert s.key_id.hex() == "c74f20a3"
    assert s.vkey == GO_VKEY
    # Ed25519 is deterministic, so the signature must match Go's exactly.
    assert sign_note(GO_TEXT, [s]).render() == GO_NOTE
    assert s._private_key_string() == GO_SKEY


def test_go_note_verifies() -> None:
    v = NoteVerifier.from_vkey(GO_VKEY)
    assert verify_note(SignedNote.parse(GO_NOTE), [v]) == ["PeterNeumann"]


def test_c2sp_example_verifies() -> None:
    v = NoteVerifier.from_vkey(C2SP_VKEY)
    assert v.vkey == C2SP_VKEY
    assert verify_note(SignedNote.parse(C2SP_NOTE), [v]) == ["example.com/foo"]


def test_key_id_computation() -> None:
    v = NoteVerifier.from_vkey(GO_VKEY)
    manual = hashlib.sha256(b"PeterNeumann\n\x01" + v.public_key_bytes).digest()[:4]
    assert manual.hex() == "c74f20a3"
    assert key_id("PeterNeumann", SIGNATURE_TYPE_ED25519, v.public_key_bytes) == manual
    assert v.key_id == manual
    # The type byte and the name are both bound into the ID.
    assert key_id("PeterNeumann", 0x04, v.public_key_bytes) != manual
    assert key_id("PeterNeumann2", 0x01, v.public_key_bytes) != manual
    with pytest.raises(ValueError):
        key_id("n", 256, v.public_key_bytes)


def test_vkey_round_trip(signer: NoteSigner) -> None:
    vkey = signer.vkey
    name, hex_id, material = vkey.split("+", 2)
    assert name == signer.name and hex_id == signer.key_id.hex()
    assert base64.b64decode(material) == b"\x01" + signer.verifier.public_key_bytes
    assert NoteVerifier.from_vkey(vkey) == signer.verifier
    assert NoteVerifier(signer.name, signer.verifier.public_key_bytes) == signer.verifier
    assert hash(NoteVerifier.from_vkey(vkey)) == hash(signer.verifier)
    assert repr(signer.verifier) == f"NoteVerifier({vkey!r})"


# --------------------------------------------------------------------------------------
# Sign and verify


def test_sign_verify_round_trip(signer: NoteSigner) -> None:
    body = Checkpoint("audit.example/mcp/test", 7, b"\x11" * 32).to_body()
    raw = sign_note(body, [signer]).render()
    note = SignedNote.parse(raw)
    assert verify_note(note, [signer.verifier]) == [signer.name]
    assert Checkpoint.parse_body(note.text).size == 7


def test_tampered_body_is_rejected(signer: NoteSigner) -> None:
    body = Checkpoint("audit.example/mcp/test", 7, b"\x11" * 32).to_body()
    note = sign_note(body, [signer])
    forged = SignedNote(body.replace(b"\n7\n", b"\n8\n"), note.signatures)
    with pytest.raises(BadSignatureError) as info:
        verify_note(forged, [signer.verifier])
    assert info.value.name == signer.name and info.value.key_id == signer.key_id


def test_tampered_signature_is_rejected(signer: NoteSigner) -> None:
    note = sign_note(b"hello\n", [signer])
    sig = note.signatures[0]
    flipped = bytes([sig.signature[0] ^ 1]) + sig.signature[1:]
    forged = SignedNote(note.text, (NoteSignature(sig.name, sig.key_id, flipped),))
    with pytest.raises(BadSignatureError):
        verify_note(forged, [signer.verifier])
    truncated = SignedNote(note.text, (NoteSignature(sig.name, sig.key_id, sig.signature[:10]),))
    with pytest.raises(BadSignatureError):
        verify_note(truncated, [signer.verifier])


def test_wrong_key_is_unknown_not_bad(signer: NoteSigner) -> None:
    # Same name, different key: a different key ID, so the signature is simply not ours.
    impostor = NoteSigner.generate(signer.name)
    note = sign_note(b"hello\n", [impostor])
    with pytest.raises(UnknownKeyError) as info:
        verify_note(note, [signer.verifier])
    assert info.value.unknown == ((impostor.name, impostor.key_id.hex()),)
    assert impostor.key_id.hex() in str(info.value)


def test_forged_key_id_under_trusted_name_is_bad_signature(signer: NoteSigner) -> None:
    # An attacker can claim our name and key ID; the signature itself must then fail.
    attacker = NoteSigner.generate("attacker")
    text = b"hello\n"
    forged_sig = attacker.sign(text).signature
    forged = SignedNote(text, (NoteSignature(signer.name, signer.key_id, forged_sig),))
    with pytest.raises(BadSignatureError):
        verify_note(forged, [signer.verifier])


def test_no_verifiers_means_unknown(signer: NoteSigner) -> None:
    with pytest.raises(UnknownKeyError):
        verify_note(sign_note(b"hello\n", [signer]), [])


def test_unknown_signatures_are_ignored(signer: NoteSigner) -> None:
    witness = NoteSigner.generate("witness.example")
    stranger = NoteSigner.generate("stranger.example")
    note = sign_note(b"hello\n", [stranger, signer, witness])
    assert verify_note(note, [signer.verifier]) == [signer.name]
    assert verify_note(note, [witness.verifier, signer.verifier]) == [signer.name, witness.name]
    # Garbage under an unknown key does not matter either.
    junk = NoteSignature("junk.example", b"\x00\x00\x00\x00", b"not a signature")
    assert verify_note(SignedNote(note.text, (junk, *note.signatures)), [signer.verifier]) == [
        signer.name
    ]


def test_every_signature_from_a_trusted_key_is_checked(signer: NoteSigner) -> None:
    note = sign_note(b"hello\n", [signer])
    good = note.signatures[0]
    bad = NoteSignature(good.name, good.key_id, b"\x00" * 64)
    with pytest.raises(BadSignatureError):
        verify_note(SignedNote(note.text, (good, bad)), [signer.verifier])


def test_duplicate_trusted_keys_are_harmless(signer: NoteSigner) -> None:
    note = sign_note(b"hello\n", [signer])
    assert verify_note(note, [signer.verifier, signer.verifier]) == [signer.name]


def test_sign_note_argument_errors(signer: NoteSigner) -> None:
    with pytest.raises(ValueError, match="at least one"):
        sign_note(b"hello\n", [])
    with pytest.raises(ValueError, match="share"):
        sign_note(b"hello\n", [signer, signer])
    with pytest.raises(NoteFormatError):
        sign_note(b"no newline", [signer])
    with pytest.raises(NoteFormatError):
        sign_note(b"bad\x07bell\n", [signer])


def test_names_must_be_valid() -> None:
    for bad in ("", "a b", "a+b"):
        with pytest.raises(KeyFormatError):
            NoteSigner.generate(bad)
    with pytest.raises(TypeError):
        NoteSigner("n", "not a key")  # type: ignore[arg-type]
    with pytest.raises(KeyFormatError):
        NoteVerifier("n", b"\x00" * 31)


@pytest.mark.parametrize(
    ("vkey", "message"),
    [
        ("PeterNeumann+c74f20a3", "form"),
        ("PeterNeumann", "form"),
        ("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "does not match"),
        ("PeterNeumann2+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "does not match"),
        ("PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "8 hex"),
        ("PeterNeumann+c74f 20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "8 hex"),
        ("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10", "base64|bytes"),
        ("PeterNeumann+c74f20a3+Ahpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "signature type"),
        ("PeterNeumann+c74f20a3+!!!", "base64"),
        ("+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "key name"),
    ],
)
def test_bad_vkeys_are_rejected(vkey: str, message: str) -> None:
    with pytest.raises(KeyFormatError, match=message):
        NoteVerifier.from_vkey(vkey)


@pytest.mark.parametrize(
    "skey",
    [
        GO_SKEY.replace("PRIVATE+KEY+", "PRIVATE+KEYS+"),
        GO_SKEY.replace("c74f20a3", "c74f20a4"),
        GO_SKEY.replace("PeterNeumann", "PaulNeumann"),
        GO_SKEY[:-4],
        GO_SKEY.replace("+AYEK", "+AoEK"),
        GO_VKEY,
    ],
)
def test_bad_private_keys_are_rejected_without_echoing_them(skey: str) -> None:
    with pytest.raises(KeyFormatError) as info:
        NoteSigner.from_private_key_string(skey)
    assert GO_SKEY_MATERIAL[:12] not in str(info.value)


# --------------------------------------------------------------------------------------
# Secrets stay secret


def test_signer_repr_hides_the_secret() -> None:
    s = NoteSigner.from_private_key_string(GO_SKEY)
    assert len(GO_SEED) == 32
    for text in (repr(s), str(s), f"{s}", f"{s!r}"):
        assert "PeterNeumann" in text
        assert GO_SKEY_MATERIAL not in text
        assert base64.b64encode(GO_SEED).decode() not in text
        assert GO_SEED.hex() not in text
    assert not hasattr(s, "__dict__")  # no stray attribute dumps the key


def test_signer_cannot_be_pickled_or_copied() -> None:
    s = NoteSigner.generate("n")
    with pytest.raises(TypeError):
        pickle.dumps(s)
    with pytest.raises(TypeError):
        copy.copy(s)


# --------------------------------------------------------------------------------------
# Key files


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    # The 0600 guarantee must not depend on the caller's umask.
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def test_generate_key_file_is_0600_and_loads(tmp_path: Path, permissive_umask: None) -> None:
    path = tmp_path / "log.key"
    verifier = generate_key_file(path, "audit.example/mcp/dev")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    content = path.read_text()
    assert re.fullmatch(
        r"PRIVATE\+KEY\+audit\.example/mcp/dev\+[0-9a-f]{8}\+[A-Za-z0-9+/]{44}\n", content
    )
    signer = load_signer(path)
    assert signer.verifier == verifier
    assert verify_note(sign_note(b"x\n", [signer]), [verifier]) == ["audit.example/mcp/dev"]


def test_generate_key_file_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "log.key"
    path.write_text("precious\n")
    with pytest.raises(KeyFileError, match="overwrite"):
        generate_key_file(path, "n")
    assert path.read_text() == "precious\n"


def test_generate_key_file_refuses_symlink(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    link = tmp_path / "log.key"
    link.symlink_to(target)
    with pytest.raises(KeyFileError):
        generate_key_file(link, "n")
    assert not target.exists()


def test_generate_key_file_reports_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cannot create"):
        generate_key_file(tmp_path / "missing" / "log.key", "n")


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o602, 0o610, 0o644, 0o666])
def test_load_signer_refuses_group_or_other_access(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "log.key"
    generate_key_file(path, "n")
    path.chmod(mode)
    with pytest.raises(KeyFileError, match="chmod 600") as info:
        load_signer(path)
    assert f"{mode:04o}" in str(info.value)


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_load_signer_accepts_owner_only(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "log.key"
    generate_key_file(path, "n")
    path.chmod(mode)
    assert load_signer(path).name == "n"


def test_load_signer_reads_go_key_file(tmp_path: Path) -> None:
    path = tmp_path / "go.key"
    path.write_text(GO_SKEY + "\n")
    path.chmod(0o600)
    assert load_signer(path).vkey == GO_VKEY


def test_load_signer_errors(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cannot open"):
        load_signer(tmp_path / "absent.key")
    with pytest.raises(KeyFileError, match="regular file"):
        load_signer(tmp_path)
    bad = tmp_path / "bad.key"
    bad.write_text("PRIVATE+KEY+n+00000000+AAAA\n")
    bad.chmod(0o600)
    with pytest.raises(KeyFormatError, match=str(bad)):
        load_signer(bad)
    huge = tmp_path / "huge.key"
    huge.write_bytes(b"x" * 10_000)
    huge.chmod(0o600)
    with pytest.raises(KeyFileError, match="too large"):
        load_signer(huge)
    binary = tmp_path / "binary.key"
    binary.write_bytes(b"\xff\xfe")
    binary.chmod(0o600)
    with pytest.raises(KeyFileError, match="UTF-8"):
        load_signer(binary)


def test_write_and_load_vkey(tmp_path: Path, signer: NoteSigner) -> None:
    path = tmp_path / "log.vkey"
    write_vkey(path, signer.verifier)
    assert path.read_text() == signer.vkey + "\n"
    assert load_verifier(path) == signer.verifier
    with pytest.raises(KeyFileError, match="overwrite"):
        write_vkey(path, NoteSigner.generate("other").verifier)
    assert load_verifier(path) == signer.verifier
    bad = tmp_path / "bad.vkey"
    bad.write_text("nonsense\n")
    with pytest.raises(KeyFormatError):
        load_verifier(bad)


def test_private_key_file_is_never_a_vkey(tmp_path: Path) -> None:
    path = tmp_path / "log.key"
    generate_key_file(path, "n")
    with pytest.raises(KeyFormatError):
        load_verifier(path)


def test_generated_keys_are_distinct(tmp_path: Path) -> None:
    a = generate_key_file(tmp_path / "a.key", "n")
    b = generate_key_file(tmp_path / "b.key", "n")
    assert a != b
    assert a.key_id != b.key_id


def test_signer_wraps_a_cryptography_key() -> None:
    key = Ed25519PrivateKey.generate()
    s = NoteSigner("n", key)
    assert s.verifier.public_key_bytes == key.public_key().public_bytes_raw()
    text = b"payload\n"
    key.public_key().verify(s.sign(text).signature, text)  # raises if not Ed25519 over text
