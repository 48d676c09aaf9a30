"""Checks that turn a regex candidate into a finding (or reject it), and value normalisers.

A check gets the candidate secret and, for assignment rules, the key it was assigned to, and
returns how many characters of the candidate to redact (usually all of them) or None to reject.
Checksums keep look-alikes out: a 16-digit order number is a card only if Luhn says so.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from mcp_notary.redact.keynames import sensitive_key_kind

Check = Callable[[str, str], "int | None"]

# IBAN length per country (ISO 13616 registry). A candidate from a country not listed here is
# rejected rather than guessed: trying every length would let 1 in 5 random strings through.
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22,
    "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32,
    "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24,
    "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31,
    "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28, "TL": 23,
    "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip


def digits_of(text: str) -> str:
    return "".join(ch for ch in text if "0" <= ch <= "9")


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) checksum of a digit string."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _card_prefix_plausible(digits: str) -> bool:
    """Issuer ranges of the major networks; random Luhn-valid numbers mostly fall outside."""
    n = len(digits)
    first = digits[0]
    if first == "4":
        return n in (13, 16, 19)  # Visa
    if first == "5":
        return n == 16 or (digits[1] in "06789" and 12 <= n <= 19)  # Mastercard, Maestro
    if first == "2":
        p4 = int(digits[:4])
        return n >= 16 and (2221 <= p4 <= 2720 or 2200 <= p4 <= 2204)  # Mastercard, Mir
    if first == "3":
        p2, p4 = digits[:2], int(digits[:4])
        if p2 in ("34", "37"):
            return n == 15  # American Express
        if p2 in ("30", "36", "38", "39"):
            return 14 <= n <= 19  # Diners
        return 3528 <= p4 <= 3589 and n >= 16  # JCB
    if first == "6":
        return n >= 16  # Discover, UnionPay, Maestro
    return False


def check_card(candidate: str, _key: str) -> int | None:
    digits = digits_of(candidate)
    if 13 <= len(digits) <= 19 and _card_prefix_plausible(digits) and luhn_valid(digits):
        return len(candidate)
    return None


def mask_card(candidate: str) -> str:
    """BIN (first six) and last four, as PCI DSS 3.4.1 permits displaying."""
    digits = digits_of(candidate)
    return digits[:6] + "*" * (len(digits) - 10) + digits[-4:]


def iban_valid(compact: str) -> bool:
    """ISO 13616 mod-97 check of an IBAN without spaces."""
    rearranged = compact[4:] + compact[:4]
    numeric = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(numeric) % 97 == 1


def check_iban(candidate: str, _key: str) -> int | None:
    """Accept the prefix that is exactly one IBAN long for its country, if its checksum holds;
    the regex may have run on into following upper-case words."""
    length = IBAN_LENGTHS.get(candidate[:2])
    if length is None:
        return None
    seen = 0
    for i, ch in enumerate(candidate):
        if ch != " ":
            seen += 1
            if seen == length:
                if i + 1 < len(candidate) and candidate[i + 1] != " ":
                    return None  # part of a longer code, not an IBAN
                compact = candidate[: i + 1].replace(" ", "")
                return i + 1 if iban_valid(compact) else None
    return None


def check_ssn(candidate: str, _key: str) -> int | None:
    """US SSNs never have area 000, 666 or 9xx, group 00 or serial 0000."""
    area, group, serial = candidate[:3], candidate[4:6], candidate[7:]
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return None
    return len(candidate)


def check_nanp_phone(candidate: str, _key: str) -> int | None:
    digits = digits_of(candidate)
    if len(digits) == 11 and digits[0] == "1":
        digits = digits[1:]
    if len(digits) != 10 or digits[0] in "01":
        return None
    return len(candidate)


def check_intl_phone(candidate: str, _key: str) -> int | None:
    return len(candidate) if 8 <= len(digits_of(candidate)) <= 15 else None


def normalize_phone(candidate: str) -> str:
    digits = digits_of(candidate)
    return digits[1:] if len(digits) == 11 and digits[0] == "1" else digits


_PLACEHOLDER = re.compile(
    r"(?:\(.*|<.*|\$\{.*|\{\{.*|%\(.*|\*+|x{3,}|\.{3,}|null|none|nil|undefined|true|false|"
    r"n/?a|unset|empty|redacted|hidden|required|optional|changeme_not_set)",
    re.IGNORECASE,
)
_MARKER = re.compile(r"\[(?:REDACTED|DROPPED):[^\]]*\]")
# A value that runs on into `&next=`, `;Next=`, `, next=`, `, next:` or ` next=` is a query
# string, connection string or log line whose next parameter is not part of the secret.
_NEXT_PARAM = re.compile(r"[&;,]\s*[A-Za-z_][\w.\-]*[=:]|[ \t]+[A-Za-z_][\w.\-]*=")
# Words that follow "password:" in prose ("Password: click the link") rather than a password.
_PROSE_WORDS = frozenset(
    str.split(
        "a an the is are was be click enter see your my our this that set reset change "
        "changed updated please must should will not no yes use used"
    )
)


def check_assignment(candidate: str, key: str) -> int | None:
    """`key = value` in text: the key must name a secret, the value must not be a placeholder."""
    if sensitive_key_kind(key) is None:
        return None
    value = candidate
    cut = _NEXT_PARAM.search(value)
    if cut is not None:
        value = value[: cut.start()]
    value = value.rstrip(",; \t")
    if not value or _PLACEHOLDER.fullmatch(value) or _MARKER.fullmatch(value):
        return None
    if value.split()[0].lower() in _PROSE_WORDS:
        return None
    return len(value)


def check_key_value(candidate: str, key: str) -> int | None:
    """Like `check_assignment` for forms whose value boundary is unambiguous (XML elements,
    `--flag value`): no trimming."""
    if sensitive_key_kind(key) is None:
        return None
    value = candidate.strip()
    if not value or _PLACEHOLDER.fullmatch(value) or _MARKER.fullmatch(value):
        return None
    return len(candidate)


_PORT_THEN_PATH = re.compile(r"[0-9]{1,5}/")


def check_url_password(candidate: str, _key: str) -> int | None:
    """The password of `scheme://user:password@host`. `http://host:8080/@alice` is a port and a
    path, not credentials."""
    if _MARKER.fullmatch(candidate) or _PORT_THEN_PATH.match(candidate):
        return None
    return len(candidate)


def check_not_marker(candidate: str, _key: str) -> int | None:
    """Anything but one of our own markers (so redaction is idempotent)."""
    return None if _MARKER.fullmatch(candidate) else len(candidate)


def check_mixed(candidate: str, _key: str) -> int | None:
    """A generated key mixes upper and lower case (and digits, where its alphabet has them);
    words and identifiers that happen to share a vendor's prefix do not."""
    has_digit = any(ch.isdigit() for ch in candidate)
    if not (any(ch.isupper() for ch in candidate) and any(ch.islower() for ch in candidate)):
        return None
    if not has_digit and any(ch in "-_" for ch in candidate[3:]):
        return None  # a hyphenated or snake_case name, not a base62 key
    return len(candidate)


def check_bearer(candidate: str, _key: str) -> int | None:
    """ "Bearer authentication" and "bearer tokens" are prose; a credential is not one plain word
    (random letters in mixed case still count)."""
    if _MARKER.fullmatch(candidate):
        return None
    if candidate.isalpha() and (candidate.islower() or candidate.istitle() or candidate.isupper()):
        return None
    return len(candidate)
