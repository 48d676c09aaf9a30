"""Does a field name say its value is a secret?

Peers redact by key lists and fail in two ways (research/peers.md): a list that misses bare
`token`, and substring matching that catches `max_tokens`. A judgement by the last word or two
fails a third way: `SECRET_KEY_BASE`, `AUTH_TOKEN_2`, `DB_PASSWORD_OLD` end in a neutral word.
So every word counts:

1. The name is folded first: Unicode NFKC (full-width `\uff50\uff41\uff53\uff53...`),
   invisible format characters removed (`pass\u200bword`), and each remaining non-ASCII
   character mapped to the ASCII letter it is confusable with (Unicode TR 39 confusables
   data, so a Cyrillic `\u0430` in `p\u0430ssword` does not hide it).
2. It is split into words: snake, kebab, dotted and camel case, digits apart (`PASSWORD1`).
3. The LAST secret term decides (`password`, `token`, `secret`, `<qualifier>_key`, ...). The
   words after it may only be neutral (`_2`, `_old`, `_base`, `_hash`, `New`, `_signing`):
   a descriptor there (`_type`, `_count`, `_policy`, `_name`, `_url`, `_expires_at`) says the
   value describes the secret and is not one. Weak terms (`pass`, `pin`, `auth`, `sig`) count
   only as the last word before neutral suffixes, since they are common inside other names.
4. Names the MCP protocol defines as opaque ids (`progressToken`, `cursor`, `requestState`)
   are not secrets by their name; the content detectors still run on their values.

There is no length cut-off: a 200-character name is judged like a short one.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from mcp_notary.redact.confusables import ASCII_LOOKALIKES

_WORDS = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")

# Terms that name a secret wherever they stand in a name -> kind.
_STRONG: dict[str, str] = {
    "password": "password", "passwd": "password", "passphrase": "password",
    "passwords": "password", "secret": "secret", "token": "token", "credential": "credential",
    "credentials": "credential", "creds": "credential", "authorization": "authorization",
    "cookie": "cookie", "cookies": "cookie", "apikey": "api_key", "apikeys": "api_key",
    "jwt": "token", "privatekey": "private_key", "jsessionid": "session_id",
    "phpsessid": "session_id", "sessionid": "session_id", "passcode": "password",
    "privkey": "private_key",
}  # fmt: skip

# Terms too common inside other names to count anywhere but at the end -> kind.
_WEAK: dict[str, str] = {
    "pass": "password", "pwd": "password", "auth": "authorization", "oauth": "authorization",
    "sig": "signature", "ssn": "us_ssn", "cvv": "card_cvv", "cvc": "card_cvv",
    "cvv2": "card_cvv", "cvc2": "card_cvv", "csc": "card_cvv", "pin": "pin", "otp": "otp",
    "totp": "otp", "hotp": "otp",
}  # fmt: skip

# Word before `key` that makes it a credential (`api_key`, `SharedAccessKey`, `JWT_KEY`).
_KEY_QUALIFIERS = frozenset(
    str.split(
        "api access secret private signing sign encryption encrypt decryption decrypt master "
        "account client session auth subscription license app application consumer webhook "
        "shared storage service jwt hmac aes rsa ssh gpg pgp crypto cipher root deploy bot "
        "admin write ingest"
    )
)

# A qualifier glued to a word before `key` still qualifies it (`myapi_key`, `webhmac_key`).
_GLUED_QUALIFIERS = tuple(q for q in _KEY_QUALIFIERS if len(q) >= 3)

# (word, next word) pairs that name a secret.
_PAIRS: dict[tuple[str, str], str] = {
    ("session", "id"): "session_id",
    ("security", "code"): "card_cvv",
    ("mfa", "code"): "otp",
    ("social", "security"): "us_ssn",
    ("amz", "signature"): "signature",
    ("hub", "signature"): "signature",
    ("webhook", "signature"): "signature",
    ("pin", "code"): "pin",
}

# Secret terms that still name a secret when glued to other words (`PGPASSWORD`, `apitoken`).
_GLUED: tuple[tuple[str, str], ...] = (
    ("password", "password"), ("passwd", "password"), ("passphrase", "password"),
    ("secret", "secret"), ("token", "token"), ("apikey", "api_key"),
    ("privatekey", "private_key"), ("accesskey", "key"), ("secretkey", "key"),
    ("credentials", "credential"), ("credential", "credential"),
)  # fmt: skip

# After a secret term, these say the value describes the secret and is not one.
_DESCRIPTORS = frozenset(
    str.split(
        "type types kind count counts length len size limit limits max min policy policies "
        "rule rules pattern regex format strength name names label id ids arn ref uri url urls "
        "endpoint endpoints path file filename dir env var field header param parameter "
        "prompt hint help description desc message error errors status state required "
        "enabled disabled present exists set expires expiry expiration expire exp ttl "
        "lifetime age at time timestamp date ts created updated changed last usage used "
        "budget estimate mode scope scopes audience issuer provider method methods "
        "algorithm alg manager store server servers source location domain secure httponly "
        "samesite reset forgot attempts retries tries failures index idx valid validity "
        "version versions"
    )
)

# Before a secret term, these make the name a count or a flag about it (`max_token`).
_NEGATING_PREFIXES = frozenset(("max", "min", "num", "total", "count", "is", "has"))

# Neutral suffixes a weak term may carry and still be the last word (`auth_2`, `pin_old`).
_NEUTRAL = frozenset(
    str.split("v ver old new prev previous current curr next backup bak tmp temp orig alt")
)

# Members the MCP protocol defines as opaque ids and pagination state, as word sequences.
_PROTOCOL_IDS = frozenset(
    (
        ("progress", "token"),
        ("cursor",),
        ("next", "cursor"),
        ("request", "state"),
        ("page", "token"),
        ("next", "page", "token"),
        ("task", "id"),
    )
)


INVISIBLE = re.compile(
    "[\u00ad\u034f\u0600-\u0605\u061c\u06dd\u070f\u0890-\u0891\u08e2\u180e\u200b-\u200f"
    "\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd"
    "\U00013430-\U00013438\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001"
    "\U000e0020-\U000e007f]"
)
"""Characters that render as nothing (Unicode's format characters, and the combining grapheme
joiner): inside a name or a token they hide it from judgement. A test checks the set."""


def fold(name: str) -> str:
    """`name` as it reads: NFKC, without invisible characters, confusables as ASCII."""
    if name.isascii():
        return name
    return INVISIBLE.sub("", unicodedata.normalize("NFKC", name).translate(ASCII_LOOKALIKES))


def _judge(words: list[str]) -> str | None:
    if tuple(words) in _PROTOCOL_IDS:
        return None
    n = len(words)
    for i in range(n - 1, -1, -1):
        word = words[i]
        kind = _STRONG.get(word)
        if kind is None and i + 1 < n:
            nxt = words[i + 1]
            if nxt == "key" and (word in _KEY_QUALIFIERS or word.endswith(_GLUED_QUALIFIERS)):
                kind = "private_key" if word == "private" else "api_key" if word == "api" else "key"
            else:
                kind = _PAIRS.get((word, nxt))
            if kind is not None:
                i += 1  # the pair ends at the next word
        if kind is None:
            kind = next((k for glued, k in _GLUED if word.endswith(glued) and word != glued), None)
        if kind is None:
            continue
        tail = words[i + 1 :]
        if any(w in _DESCRIPTORS for w in tail):
            return None
        head = words[i - 1] if i >= 1 else ""
        if head in _NEGATING_PREFIXES:
            return None
        return kind
    # Weak terms: only as the last word, neutral suffixes aside.
    end = n
    while end > 0 and (words[end - 1] in _NEUTRAL or words[end - 1].isdigit()):
        end -= 1
    if end == 0:
        return None
    last = words[end - 1]
    kind = _WEAK.get(last)
    if kind is not None and end >= 2 and words[end - 2] in _NEGATING_PREFIXES:
        return None
    return kind


@lru_cache(maxsize=4096)
def sensitive_key_kind(name: str) -> str | None:
    """The kind of secret a field called `name` holds, or None if the name is not telling."""
    if not name:
        return None
    words = [w.lower() for w in _WORDS.findall(fold(name))]
    return _judge(words) if words else None
