"""Random fake secrets and personal data, one generator per kind, for the redaction tests.

Generated from each kind's published format (and checksum, where there is one), never copied
from the corpus, so the tests exercise the kinds rather than particular strings. Each generator
returns (text, secret): `secret` must not survive redaction of `text`.
"""

from __future__ import annotations

import base64
import json
import random
import string
from collections.abc import Callable

ALNUM = string.ascii_letters + string.digits
URLSAFE = ALNUM + "-_"
HEX = "0123456789abcdef"
# Password characters: anything but whitespace, quotes, angle brackets and the separators
# (`&`, `;`, `,`) that end a value in query and connection strings.
PASSWORD = ALNUM + "!#$%^*()-_=+[]{}:.?~/|"


def pick(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def password(rng: random.Random) -> str:
    # Starts with a letter and mixes classes, like a generated password.
    return (
        rng.choice(string.ascii_letters)
        + pick(rng, PASSWORD, rng.randint(7, 20))
        + rng.choice(string.digits)
    )


def luhn_complete(partial: str) -> str:
    """`partial` plus the Luhn check digit."""
    total = 0
    for i, ch in enumerate(reversed(partial)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return partial + str((10 - total % 10) % 10)


def card_number(rng: random.Random) -> str:
    prefix, length = rng.choice(
        [("4", 16), ("51", 16), ("55", 16), ("2221", 16), ("34", 15), ("37", 15), ("6011", 16)]
    )
    return luhn_complete(prefix + pick(rng, string.digits, length - len(prefix) - 1))


def iban(rng: random.Random, country: str = "", length: int = 0) -> str:
    country, length = (
        (country, length)
        if country
        else rng.choice([("DE", 22), ("GB", 22), ("FR", 27), ("NL", 18)])
    )
    if country == "GB" or country == "NL":
        bban = pick(rng, string.ascii_uppercase, 4) + pick(rng, string.digits, length - 8)
    else:
        bban = pick(rng, string.digits, length - 4)
    numeric = "".join(str(int(ch, 36)) for ch in bban + country + "00")
    check = 98 - int(numeric) % 97
    return f"{country}{check:02d}{bban}"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def jwt(rng: random.Random) -> str:
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = _b64url(
        json.dumps({"sub": pick(rng, string.digits, 8), "iat": rng.randint(1, 2**31)}).encode()
    )
    return f"{header}.{payload}.{pick(rng, URLSAFE, 43)}"


def pem(rng: random.Random) -> tuple[str, str]:
    label = rng.choice(["RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY"])
    lines = [pick(rng, ALNUM + "+/", 64) for _ in range(rng.randint(3, 8))]
    block = f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----"
    return block, rng.choice(lines)


def _token(prefix: str, alphabet: str, n: int) -> Callable[[random.Random], str]:
    return lambda rng: prefix + pick(rng, alphabet, n)


TOKENS: dict[str, Callable[[random.Random], str]] = {
    "aws_access_key_id": lambda rng: (
        rng.choice(["AKIA", "ASIA"]) + pick(rng, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)
    ),
    "google_api_key": _token("AIza", URLSAFE, 35),
    "github_token": lambda rng: rng.choice(["ghp_", "gho_", "ghs_"]) + pick(rng, ALNUM, 36),
    "github_fine_grained_pat": _token("github_pat_", ALNUM + "_", 82),
    "gitlab_token": _token("glpat-", URLSAFE, 20),
    "slack_token": lambda rng: (
        f"xoxb-{pick(rng, string.digits, 11)}-{pick(rng, string.digits, 13)}-{pick(rng, ALNUM, 24)}"
    ),
    "stripe_key": lambda rng: (
        rng.choice(["sk_live_", "rk_live_", "sk_test_"]) + pick(rng, ALNUM, 24)
    ),
    "openai_api_key": lambda rng: rng.choice(["sk-proj-", "sk-"]) + pick(rng, URLSAFE, 48),
    "anthropic_api_key": _token("sk-ant-api03-", URLSAFE, 93),
    "npm_token": _token("npm_", ALNUM, 36),
    "pypi_token": _token("pypi-AgEIcHlwaS5vcmc", URLSAFE, 70),
    "vault_token": _token("hvs.", URLSAFE, 90),
    "twilio_api_key": _token("SK", HEX, 32),
    "sendgrid_api_key": lambda rng: f"SG.{pick(rng, URLSAFE, 22)}.{pick(rng, URLSAFE, 43)}",
    "huggingface_token": _token("hf_", string.ascii_letters, 34),
    "google_oauth_client_secret": _token("GOCSPX-", URLSAFE, 28),
    "azure_client_secret": lambda rng: (
        pick(rng, ALNUM, 3) + rng.choice(string.digits) + "Q~" + pick(rng, ALNUM + "_~.-", 34)
    ),
    "jwt": jwt,
}


def url_password(rng: random.Random) -> tuple[str, str]:
    pw = password(rng)
    scheme = rng.choice(["postgresql", "mysql", "redis", "mongodb+srv", "amqp"])
    user = rng.choice(["app", "admin", ""])
    host = rng.choice(["db.internal", "10.0.3.7", "cache"])
    return f"{scheme}://{user}:{pw}@{host}:{rng.randint(1000, 9999)}/shop", pw


def assignment(rng: random.Random) -> tuple[str, str]:
    key = rng.choice(
        ["password", "PGPASSWORD", "db_password", "api_key", "client_secret", "AUTH_TOKEN",
         "secret", "MYSQL_PWD", "x-api-key"]
    )  # fmt: skip
    pw = password(rng)
    return f"{key}{rng.choice(['=', ': ', ' = '])}{pw}", pw


def json_field(rng: random.Random) -> tuple[str, str]:
    key = rng.choice(["password", "db_password", "apiKey", "access_token", "clientSecret"])
    pw = password(rng)
    return f'"{key}": "{pw}"', pw


def bearer(rng: random.Random) -> tuple[str, str]:
    token = pick(rng, URLSAFE + ".", 40)
    return f"Authorization: Bearer {token}", token


def email(rng: random.Random) -> tuple[str, str]:
    domain = rng.choice(["example.com", "mail.example.net", "corp.example.org"])
    address = f"{pick(rng, string.ascii_lowercase, 6)}.{pick(rng, ALNUM, 4)}@{domain}"
    return address, address


def phone(rng: random.Random) -> tuple[str, str]:
    form = rng.choice(["+1 ({a}) {b}-{c}", "({a}) {b}-{c}", "{a}-{b}-{c}", "+1 {a} {b} {c}"])
    number = form.format(
        a=rng.randint(200, 999), b=rng.randint(200, 999), c=f"{rng.randint(0, 9999):04d}"
    )
    return number, number


def ssn(rng: random.Random) -> tuple[str, str]:
    number = f"{rng.randint(100, 665):03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"
    return number, number


def payment_card(rng: random.Random) -> tuple[str, str]:
    digits = card_number(rng)
    sep = rng.choice(["", " ", "-"])
    shown = sep.join(digits[i : i + 4] for i in range(0, len(digits), 4)) if sep else digits
    return shown, shown


def iban_text(rng: random.Random) -> tuple[str, str]:
    value = iban(rng)
    return value, value


def _token_kind(gen: Callable[[random.Random], str]) -> Callable[[random.Random], tuple[str, str]]:
    def make(rng: random.Random) -> tuple[str, str]:
        token = gen(rng)
        return token, token

    return make


KINDS: dict[str, Callable[[random.Random], tuple[str, str]]] = {
    **{kind: _token_kind(gen) for kind, gen in TOKENS.items()},
    "private_key": pem,
    "url_password": url_password,
    "assignment": assignment,
    "json_field": json_field,
    "bearer": bearer,
    "email": email,
    "phone": phone,
    "us_ssn": ssn,
    "payment_card": payment_card,
    "iban": iban_text,
}

CONTEXTS = [
    "{s}",
    "Here is the config you asked for:\n{s}\nLet me know if it works.",
    "Connection details: {s}",
    '{{"status": "ok", "data": {{"note": {j}}}}}',
    "export CONFIG='{s}'",
    "- item one\n- {s}\n- item three",
]


def embed(rng: random.Random, text: str) -> str:
    """`text` placed in a random realistic context (prose, JSON string, shell, YAML)."""
    context = rng.choice(CONTEXTS)
    return context.format(s=text, j=json.dumps(text))
