"""Tests for mcp_notary.ledger.checkpoint: formats, strict parsing, round trips both ways."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcp_notary.errors import IntegrityError
from mcp_notary.ledger import checkpoint
from mcp_notary.ledger.checkpoint import (
    MAX_SIGNATURES,
    SIGNATURE_PREFIX,
    Checkpoint,
    CheckpointFormatError,
    NoteFormatError,
    NoteSignature,
    SignedNote,
    check_note_text,
    is_valid_key_name,
)

ROOT = bytes(range(32))
ROOT_B64 = base64.b64encode(ROOT).decode()

# Examples from the C2SP specifications and golang.org/x/mod/sumdb/note.
C2SP_CHECKPOINT = (
    "example.com/behind-the-sofa\n"
    "20852163\n"
    "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    "\n"
    "\u2014 example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/"
    "Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
).encode()
C2SP_POEM = (
    "Ognuno sta solo sul cuor della terra\n"
    "trafitto da un raggio di sole:\n"
    "\n"
    "ed è subito sera.\n"
    "\n"
    "\u2014 quasimodo.example/salvatore "
    "NnugSzTjtVAewIS+Z/iJhUPeFDkO/5QQ2i5ddnGITLlC+EhfLW9oJKONrMouFSQU0xMcXxj99ihAQwaqP3ZekRwNtIc=\n"
).encode()
GO_NOTE = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
    "\n"
    "\u2014 PeterNeumann "
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
).encode()


def sig_line(
    name: str = "example.com/log", payload: bytes = b"\x01\x02\x03\x04" + b"s" * 64
) -> str:
    return f"{SIGNATURE_PREFIX}{name} {base64.b64encode(payload).decode()}\n"


def test_public_api_is_exact() -> None:
    assert sorted(checkpoint.__all__) == sorted(
        [
            "MAX_SIGNATURES",
            "ROOT_HASH_SIZE",
            "SIGNATURE_PREFIX",
            "Checkpoint",
            "CheckpointFormatError",
            "NoteFormatError",
            "NoteSignature",
            "SignedNote",
            "check_note_text",
            "is_valid_key_name",
        ]
    )
    assert SIGNATURE_PREFIX == "\u2014 "
    for err in (NoteFormatError, CheckpointFormatError):
        assert issubclass(err, ValueError) and issubclass(err, IntegrityError)


# --------------------------------------------------------------------------------------
# Checkpoint body


def test_checkpoint_to_body_exact_bytes() -> None:
    cp = Checkpoint("audit.example/mcp/dev/2026", 42, ROOT)
    assert cp.to_body() == f"audit.example/mcp/dev/2026\n42\n{ROOT_B64}\n".encode()
    ext = Checkpoint("o", 0, ROOT, ("ext one", "ext-two"))
    assert ext.to_body() == f"o\n0\n{ROOT_B64}\next one\next-two\n".encode()


def test_checkpoint_parses_c2sp_example() -> None:
    note = SignedNote.parse(C2SP_CHECKPOINT)
    cp = Checkpoint.parse_body(note.text)
    assert cp.origin == "example.com/behind-the-sofa"
    assert cp.size == 20852163
    assert cp.root == base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    assert cp.extensions == ()
    assert cp.to_body() == note.text


@pytest.mark.parametrize(
    "body",
    [
        f"o\n0\n{ROOT_B64}\n".encode(),
        f"example.com/log42\n18446744073709551615\n{ROOT_B64}\n".encode(),
        f"origine è unicode\n7\n{ROOT_B64}\nextension a\nextension b\n".encode(),
    ],
)
def test_checkpoint_body_parse_then_render(body: bytes) -> None:
    assert Checkpoint.parse_body(body).to_body() == body


checkpoint_text = st.text(
    st.characters(codec="utf-8", exclude_characters="\n", min_codepoint=0x20),
    min_size=1,
    max_size=30,
)


@given(
    origin=checkpoint_text,
    size=st.integers(min_value=0, max_value=2**64 - 1),
    root=st.binary(min_size=32, max_size=32),
    extensions=st.lists(checkpoint_text, max_size=3),
)
def test_checkpoint_render_then_parse(
    origin: str, size: int, root: bytes, extensions: list[str]
) -> None:
    cp = Checkpoint(origin, size, root, tuple(extensions))
    body = cp.to_body()
    assert Checkpoint.parse_body(body) == cp
    assert Checkpoint.parse_body(body).to_body() == body


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (f"o\n1\n{ROOT_B64}".encode(), "end with a newline"),
        (b"o\n1\n", "needs origin"),
        (b"", "end with a newline"),
        (f"\n1\n{ROOT_B64}\n".encode(), "line 1 is empty"),
        (f"o\n1\n{ROOT_B64}\n\n".encode(), "line 4 is empty"),
        (f"o\n1\n{ROOT_B64}\n\next\n".encode(), "line 4 is empty"),
        (f"o\n01\n{ROOT_B64}\n".encode(), "leading zeros"),
        (f"o\n00\n{ROOT_B64}\n".encode(), "leading zeros"),
        (f"o\n+1\n{ROOT_B64}\n".encode(), "decimal"),
        (f"o\n-1\n{ROOT_B64}\n".encode(), "decimal"),
        (f"o\n 1\n{ROOT_B64}\n".encode(), "decimal"),
        (f"o\n1_000\n{ROOT_B64}\n".encode(), "decimal"),
        (f"o\n\u0661\n{ROOT_B64}\n".encode(), "decimal"),  # Arabic-Indic digit one
        (f"o\n0x10\n{ROOT_B64}\n".encode(), "decimal"),
        (f"o\n18446744073709551616\n{ROOT_B64}\n".encode(), "64 bits"),
        (f"o\n1\n{ROOT_B64[:-1]}\n".encode(), "base64"),  # padding missing
        (f"o\n1\n{ROOT_B64[:-2]}9=\n".encode(), "canonical"),  # non-zero padding bits
        (f"o\n1\n{ROOT_B64.replace('A', '-')}\n".encode(), "base64"),  # URL alphabet
        (f"o\n1\n{base64.b64encode(ROOT[:31]).decode()}\n".encode(), "31 bytes"),
        (f"o\n1\n{base64.b64encode(ROOT + b'x').decode()}\n".encode(), "33 bytes"),
        (f"o\r\n1\n{ROOT_B64}\n".encode(), "control character"),
        (f"o\t\n1\n{ROOT_B64}\n".encode(), "control character"),
        (f"o\n1\n{ROOT_B64}\n".encode().replace(b"o", b"\xff"), "UTF-8"),
    ],
)
def test_checkpoint_parse_rejects(body: bytes, message: str) -> None:
    with pytest.raises(CheckpointFormatError, match=message):
        Checkpoint.parse_body(body)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"origin": "", "size": 1, "root": ROOT},
        {"origin": "a\nb", "size": 1, "root": ROOT},
        {"origin": "a\x00", "size": 1, "root": ROOT},
        {"origin": "o", "size": -1, "root": ROOT},
        {"origin": "o", "size": 2**64, "root": ROOT},
        {"origin": "o", "size": True, "root": ROOT},
        {"origin": "o", "size": 1.0, "root": ROOT},
        {"origin": "o", "size": 1, "root": ROOT[:31]},
        {"origin": "o", "size": 1, "root": ROOT.hex()},
        {"origin": "o", "size": 1, "root": ROOT, "extensions": ("",)},
        {"origin": "o", "size": 1, "root": ROOT, "extensions": ("a\nb",)},
        {"origin": "o", "size": 1, "root": ROOT, "extensions": ["a"]},
    ],
)
def test_checkpoint_constructor_rejects(kwargs: dict[str, object]) -> None:
    with pytest.raises(CheckpointFormatError):
        Checkpoint(**kwargs)  # type: ignore[arg-type]  # deliberately ill-typed


def test_checkpoint_body_must_be_bytes() -> None:
    with pytest.raises(CheckpointFormatError, match="bytes"):
        Checkpoint.parse_body(f"o\n1\n{ROOT_B64}\n")  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------
# Signed note


@pytest.mark.parametrize("raw", [C2SP_CHECKPOINT, C2SP_POEM, GO_NOTE])
def test_note_parse_then_render_spec_examples(raw: bytes) -> None:
    note = SignedNote.parse(raw)
    assert note.render() == raw
    assert len(note.signatures) == 1


def test_note_text_may_contain_blank_lines() -> None:
    note = SignedNote.parse(C2SP_POEM)
    # The last blank line separates; the earlier one belongs to the text.
    assert note.text.endswith("ed è subito sera.\n".encode())
    assert b"\n\n" in note.text
    assert note.signatures[0].name == "quasimodo.example/salvatore"


def test_note_parse_fields() -> None:
    note = SignedNote.parse(GO_NOTE)
    sig = note.signatures[0]
    assert sig.name == "PeterNeumann"
    assert sig.key_id.hex() == "c74f20a3"
    assert len(sig.signature) == 64
    assert note.text == GO_NOTE.split(b"\n\n")[0] + b"\n"


def test_note_with_many_signatures_round_trips() -> None:
    # The spec requires verifiers to accept at least 16 signatures.
    lines = "".join(sig_line(f"w{i}.example") for i in range(16))
    raw = b"text\n\n" + lines.encode()
    note = SignedNote.parse(raw)
    assert len(note.signatures) == 16
    assert note.render() == raw


note_text = st.lists(
    st.text(
        st.characters(codec="utf-8", exclude_characters="\n", min_codepoint=0x20),
        max_size=20,
    ),
    min_size=1,
    max_size=5,
).map(lambda lines: "".join(line + "\n" for line in lines).encode())
key_names = st.text(
    st.characters(codec="utf-8", exclude_characters="+", min_codepoint=0x20),
    min_size=1,
    max_size=20,
).filter(is_valid_key_name)
signatures = st.builds(
    NoteSignature,
    name=key_names,
    key_id=st.binary(min_size=4, max_size=4),
    signature=st.binary(min_size=1, max_size=80),
)


@given(text=note_text, sigs=st.lists(signatures, min_size=1, max_size=5))
def test_note_render_then_parse(text: bytes, sigs: list[NoteSignature]) -> None:
    note = SignedNote(text, tuple(sigs))
    raw = note.render()
    assert SignedNote.parse(raw) == note
    assert SignedNote.parse(raw).render() == raw


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"text\n" + sig_line().encode(), "no blank line"),
        (b"text\n\n", "no signature lines"),
        (b"text\n\n\n", "no signature lines"),
        (b"text\n\n" + sig_line().encode()[:-1], "end with a newline"),
        (b"text\n\n" + sig_line().encode() + b"\n", "no signature lines"),
        (b"text\n\n" + sig_line().replace("\u2014", "-").encode(), "em dash"),
        (b"text\n\n" + sig_line().replace("\u2014", "\u2013").encode(), "em dash"),
        (b"text\n\n" + sig_line().replace("\u2014 ", "\u2014").encode(), "em dash"),
        (b"text\n\n" + sig_line().replace(" ", "  ", 1).encode(), "invalid key name"),
        (b"text\n\n" + sig_line(name="a+b").encode(), "invalid key name"),
        (b"text\n\n" + sig_line(name="a\u00a0b").encode(), "invalid key name"),
        (b"text\n\n" + sig_line(name="").encode(), "invalid key name"),
        ("text\n\n\u2014 name\n".encode(), "no signature"),
        ("text\n\n\u2014 name \n".encode(), "too short"),
        ("text\n\n\u2014 name AQIDBA==\n".encode(), "too short"),  # key ID only
        ("text\n\n\u2014 name AQIDBAV=\n".encode(), "canonical"),
        ("text\n\n\u2014 name AQIDBAU\n".encode(), "base64"),
        ("text\n\n\u2014 name AQIDBAU= \n".encode(), "base64"),
        (b"text\r\n\n" + sig_line().encode(), "control character"),
        (b"te\x00xt\n\n" + sig_line().encode(), "control character"),
        (b"te\xc3xt\n\n" + sig_line().encode(), "UTF-8"),
        (b"\n" + sig_line().encode(), "no blank line"),
        (
            b"text\n\n" + "".join(sig_line() for _ in range(MAX_SIGNATURES + 1)).encode(),
            "more than",
        ),
    ],
)
def test_note_parse_rejects(raw: bytes, message: str) -> None:
    with pytest.raises(NoteFormatError, match=message):
        SignedNote.parse(raw)


def test_note_constructor_rejects() -> None:
    sig = NoteSignature("n", b"\x00" * 4, b"s")
    with pytest.raises(NoteFormatError, match="newline"):
        SignedNote(b"no newline", (sig,))
    with pytest.raises(NoteFormatError, match="newline"):
        SignedNote(b"", (sig,))
    with pytest.raises(NoteFormatError, match="at least one"):
        SignedNote(b"text\n", ())
    with pytest.raises(NoteFormatError, match="tuple"):
        SignedNote(b"text\n", [sig])  # type: ignore[arg-type]
    with pytest.raises(NoteFormatError, match="bytes"):
        SignedNote("text\n", (sig,))  # type: ignore[arg-type]
    with pytest.raises(NoteFormatError):
        NoteSignature("n", b"\x00" * 3, b"s")
    with pytest.raises(NoteFormatError):
        NoteSignature("n", b"\x00" * 4, b"")
    with pytest.raises(NoteFormatError):
        NoteSignature("a b", b"\x00" * 4, b"s")


def test_text_consisting_of_one_newline_round_trips() -> None:
    note = SignedNote(b"\n", (NoteSignature("n", b"\x00" * 4, b"s"),))
    assert SignedNote.parse(note.render()) == note


def test_check_note_text() -> None:
    check_note_text(b"fine\n\nalso fine\n")
    for bad in (b"", b"x", b"x\r\n", "\u00e8".encode("latin-1") + b"\n"):
        with pytest.raises(NoteFormatError):
            check_note_text(bad)


def test_key_names() -> None:
    assert is_valid_key_name("example.com/log42")
    assert is_valid_key_name("PeterNeumann")
    for bad in ("", "a b", "a+b", "a\u2003b", "a\tb", "a\x01b"):
        assert not is_valid_key_name(bad), bad
