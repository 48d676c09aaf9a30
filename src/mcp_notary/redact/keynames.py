"""Does a field name say its value is a secret?

Peers redact by key lists and fail in two ways (research/peers.md): a list that misses bare
`token`, and substring matching that catches `max_tokens`, `token_count` or `author`. So the
name is split into words (snake, kebab, dotted and camel case) and judged by its LAST word or
two: `access_token`, `X-Api-Key`, `PGPASSWORD`, `clientSecret` name secrets; `token_type`,
`password_policy`, `max_tokens` and `secret_name` do not.
"""

from __future__ import annotations

import re
from functools import lru_cache

_WORDS = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")

# Last word -> kind.
_LAST_WORD: dict[str, str] = {
    "password": "password", "passwd": "password", "passphrase": "password", "pwd": "password",
    "pass": "password", "secret": "secret", "token": "token", "credential": "credential",
    "credentials": "credential", "creds": "credential", "authorization": "authorization",
    "auth": "authorization", "oauth": "authorization", "cookie": "cookie", "cookies": "cookie",
    "apikey": "api_key", "sig": "signature", "jsessionid": "session_id",
    "phpsessid": "session_id", "sessionid": "session_id", "ssn": "us_ssn", "cvv": "card_cvv",
    "cvc": "card_cvv", "cvv2": "card_cvv", "cvc2": "card_cvv", "csc": "card_cvv",
    "pin": "pin", "otp": "otp", "totp": "otp", "hotp": "otp",
}  # fmt: skip

# Word before a final "key" that makes it a credential (`api_key`, `SharedAccessKey`).
_KEY_QUALIFIERS = frozenset(
    str.split(
        "api access secret private signing encryption master account client session auth "
        "subscription license app application consumer webhook shared storage service"
    )
)

# (second-to-last, last) pairs that name a secret.
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

# Strong terms that still name a secret when glued to other words (`PGPASSWORD`, `apitoken`).
_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("password", "password"), ("passwd", "password"), ("passphrase", "password"),
    ("secret", "secret"), ("token", "token"), ("apikey", "api_key"),
    ("privatekey", "private_key"), ("accesskey", "key"), ("secretkey", "key"),
)  # fmt: skip

# A strong term followed by one of these is still the secret, or a crackable form of it
# (`password_hash`, `secret_value`, `password_confirmation`).
_DERIVED = frozenset(
    str.split(
        "hash digest salt enc encrypted b64 base64 hex plain plaintext raw value confirm "
        "confirmation again repeat"
    )
)
_STRONG = frozenset(("password", "passwd", "passphrase", "secret", "token", "apikey"))


@lru_cache(maxsize=4096)
def sensitive_key_kind(name: str) -> str | None:
    """The kind of secret a field called `name` holds, or None if the name is not telling."""
    if not name or len(name) > 64:
        return None
    words = [w.lower() for w in _WORDS.findall(name)]
    if not words:
        return None
    last = words[-1]
    kind = _LAST_WORD.get(last)
    if kind is not None:
        return kind
    if len(words) >= 2:
        prev = words[-2]
        if last == "key" and prev in _KEY_QUALIFIERS:
            return "private_key" if prev == "private" else "api_key" if prev == "api" else "key"
        pair = _PAIRS.get((prev, last))
        if pair is not None:
            return pair
        if last in _DERIVED:
            for word in words[:-1]:
                strong = _LAST_WORD.get(word)
                if word in _STRONG and strong is not None:
                    return strong
    joined = "".join(words)
    for suffix, suffix_kind in _SUFFIXES:
        if joined.endswith(suffix):
            return suffix_kind
    return None
