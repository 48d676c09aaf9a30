"""The detector ruleset: each rule has an id, a version, a kind, a regex and an optional check.

Rules describe KINDS of secret (a vendor's token format, a checksum-valid card number, a value
assigned to a key that names a secret), never particular values. Where a regex names a group
`s` (or `s1`, `s2`, ... for alternatives), only that group is the secret: `postgresql://app:` and
`@db:5432/shop` stay, the password goes. A group `k` holds the key an assignment rule assigned
to, and is passed to the check.

Ordering matters only where two rules can match at the same position: the first listed wins,
so specific rules come before generic ones. Bump a rule's `version` when its behaviour changes;
the manifest records it.

Dialect: the common subset of RE2 and Python `re` (see engine.py). No look-around, no
back-references, no `$`/`\\Z`; `\\x00` is excluded from open-ended classes because the detector
joins many strings with NUL separators into one scan.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mcp_notary.redact import validators as v


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    kind: str
    pattern: str
    version: str = "1"
    check: v.Check | None = None  # (candidate, key) -> length to redact, or None to reject
    mask: Callable[[str], str] | None = None  # shown in the marker (cards: BIN + last four)
    normalize: Callable[[str], str] | None = None  # canonical form the token is computed on
    skip: bool = False  # matches are left alone (our own markers)


# Key names that carry secrets in `key=value` text. The key must contain one of these terms;
# the check then applies the same word-based judgement as JSON keys (keynames.py) to the
# whole key, so `compass=`, `bypass:` and `token_count=` pass and `AUTH_TOKEN_2=` does not.
_TERMS = (
    r"(?i:pass(?:word|wd|phrase|code)?|pwd|secret|token|jwt|privkey|api[_.\-]?key|"
    r"(?:access|secret|private|signing|sign|encryption|encrypt|decryption|decrypt|master|"
    r"account|client|session|auth|subscription|license|app|application|consumer|webhook|"
    r"shared|storage|service|hmac|aes|rsa|ssh|gpg|pgp|crypto|cipher|root|deploy|bot|admin|"
    r"write|ingest)[_.\-]?key|"
    r"credentials?|creds|authorization|auth|sig|session[_.\-]?id|jsessionid|phpsessid)"
)
_KEY = r"(?P<k>[A-Za-z0-9_.\-]*" + _TERMS + r"[A-Za-z0-9_.\-]{0,40})"
_CLOSE_QUOTE = r"(?:\\?[\"'])?"
_SEP = r"[ \t]*(?::=|=>|[:=])[ \t]*"
_SCHEME = r"(?:(?i:bearer|basic|token|digest|negotiate|ntlm)[ \t]+)?"
_BARE = r"[^\s\"'<>\x00]+"
# A value: \"escaped-quoted\", "quoted", 'quoted', or bare (optionally after an auth scheme).
# A bare value glued to `=` (`PASSWORD=x ./run`, shell style) is one word; after `:` or a
# spaced `=` (`password = correct horse battery staple`, config style) it runs on to the end
# of the line, and the check cuts it before a following `name=` parameter.
_VALUE = (
    r"(?:" + _SEP + r"(?:\\\"(?P<s1>[^\"\\\r\n\x00]+)\\\""
    r"|\"(?P<s2>(?:[^\"\\\r\n\x00]|\\.)+)\""
    r"|'(?P<s3>[^'\r\n\x00]+)')"
    r"|(?::=|=>|=)" + _SCHEME + r"(?P<s4>" + _BARE + r")"
    r"|(?:[ \t]*:|[ \t]+(?::=|=>|=)|(?::=|=>|=)[ \t]+)[ \t]*"
    + _SCHEME
    + r"(?P<s5>"
    + _BARE
    + r"(?:[ \t]+"
    + _BARE
    + r")*))"
)
_TOKEN_CHARS = r"[0-9A-Za-z_\-]"
_PEM_LABEL = (
    r"[ \t]*(?i:{0})[ \tA-Za-z0-9]{{0,40}}(?i:private)[ \t]+(?i:key)(?:[ \t]+(?i:block))?[ \t]*"
)
# Programs whose `-pPASSWORD` (no space) is a password: MySQL and MariaDB clients.
_MYSQL = (
    r"(?:mysql|mysqldump|mysqladmin|mysqlimport|mysqlshow|mysqlcheck|mysqlsh|mariadb|"
    r"mariadb-dump|mariadb-admin|mariadb-import|mariadb-show|mariadb-check)"
)

_MARKER = Rule(
    id="marker",
    kind="",
    pattern=r"\[REDACTED:[a-z][a-z0-9_]{0,39}:(?:[0-9]{4,8}\*{1,13}[0-9]{4}:)?[0-9a-f]{12}\]",
    skip=True,
)

# fmt: off
SECRET_RULES: tuple[Rule, ...] = (
    Rule(
        "secret.private_key",
        "private_key",
        # Armour in any case and with any spacing (`-----begin rsa private key-----`,
        # `----- BEGIN  RSA PRIVATE KEY -----`): the body is as secret either way.
        r"-{5}" + _PEM_LABEL.format("BEGIN") + r"-{5}(?:[^\-\x00]|-[^\-\x00])*"
        r"(?:-{5}" + _PEM_LABEL.format("END") + r"-{5})?",
        version="2",
    ),
    Rule(
        "secret.aws_secret_access_key",
        "aws_secret_access_key",
        r"\b(?P<k>(?i:aws_?secret_?access_?key|aws_?secret_?key|secret_?access_?key))"
        + _CLOSE_QUOTE
        + _SEP
        + r"(?:\\?[\"'])?(?P<s>[A-Za-z0-9/+=]{40})",
    ),
    Rule(
        "secret.cookie_header",
        "cookie",
        r"\b(?P<k>(?i:set-cookie|cookie))" + _CLOSE_QUOTE + r"[ \t]*[:=][ \t]*(?:\\?[\"'])?"
        r"(?P<s>[^\r\n\"\\\x00]+)",
        check=v.check_not_marker,
    ),
    Rule(
        "secret.assignment",
        "secret",
        r"\b" + _KEY + _CLOSE_QUOTE + _VALUE,
        version="2",
        check=v.check_assignment,
    ),
    Rule(
        "secret.cli_flag",
        "secret",
        r"--" + _KEY + r"[ \t]+(?P<s>[^\s\"'\-\x00][^\s\"'\x00]*)",
        check=v.check_key_value,
    ),
    Rule(
        "secret.curl_user",
        "password",
        # `curl -u user:password`, `--user=user:password`, `-uuser:password`; the user stays.
        r"\bcurl\b[^\r\n\x00]{0,400}?[ \t](?:-u|--user)(?:[ \t]+|=)?[\"']?[^\s\"':\x00]*:"
        r"(?P<s>[^\s\"'\x00]+)",
        check=v.check_not_marker,
    ),
    Rule(
        "secret.mysql_password",
        "password",
        # `mysql -u root -pPASSWORD`: the password is glued to -p (`-p` alone prompts).
        r"\b" + _MYSQL + r"\b[^\r\n\x00]{0,400}?[ \t]-p[\"']?(?P<s>[^\s\"'\x00]+)",
        check=v.check_not_marker,
    ),
    Rule(
        "secret.sshpass",
        "password",
        r"\bsshpass\b[ \t]+-p[ \t]*[\"']?(?P<s>[^\s\"'\x00]+)",
        check=v.check_not_marker,
    ),
    Rule(
        "secret.xml_element",
        "secret",
        r"<" + _KEY + r">(?P<s>[^<\x00]+)</",
        check=v.check_key_value,
    ),
    Rule(
        "secret.bearer",
        "bearer_token",
        r"\b(?i:bearer)[ \t]+(?P<s>[0-9A-Za-z\-._~+/]{8,}=*)",
        check=v.check_bearer,
    ),
    Rule(
        "secret.url_password",
        "password",
        r"[A-Za-z][A-Za-z0-9+.\-]{1,30}://[^\s/?#@:\"'<>\x00\[\]]*:"
        r"(?P<s>[^\s\"'<>\x00]+)@[A-Za-z0-9\[_\-]",
        check=v.check_url_password,
        version="2",
    ),
    Rule("secret.aws_access_key_id", "aws_access_key_id",
         r"(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA)[A-Z0-9]{16}|\bACCA[A-Z0-9]{16}\b", version="2"),
    Rule("secret.google_api_key", "google_api_key", r"AIza" + _TOKEN_CHARS + "{35}", version="2"),
    Rule("secret.google_oauth_client_secret", "google_oauth_client_secret",
         r"GOCSPX-" + _TOKEN_CHARS + "{28}", version="2"),
    Rule("secret.google_oauth_token", "google_oauth_token",
         r"ya29\." + _TOKEN_CHARS + "{20,}", version="2"),
    Rule("secret.azure_ad_client_secret", "azure_client_secret",
         r"[0-9A-Za-z_~.]{3}[0-9]Q~[0-9A-Za-z_~.\-]{31,34}", version="2"),
    Rule("secret.github_token", "github_token", r"gh[pousr]_[0-9A-Za-z]{36,}", version="2"),
    Rule("secret.github_fine_grained_pat", "github_token",
         r"github_pat_[0-9A-Za-z_]{60,}", version="2"),
    Rule("secret.gitlab_token", "gitlab_token",
         r"gl(?:pat|dt|rt|ptt|cbt|oas|soat|ft|imt|agent|ds|ffct)-" + _TOKEN_CHARS + "{20,}",
         version="2"),
    Rule("secret.gitlab_runner_token", "gitlab_token",
         r"GR1348941" + _TOKEN_CHARS + "{20,}", version="2"),
    Rule("secret.slack_token", "slack_token", r"xox[abposre]-[0-9A-Za-z\-]{10,}", version="2"),
    Rule("secret.slack_app_token", "slack_token", r"xapp-[0-9]-[0-9A-Za-z\-]{10,}", version="2"),
    Rule("secret.slack_webhook", "slack_webhook",
         r"hooks\.slack\.com/(?:services|workflows|triggers)/(?P<s>[0-9A-Za-z_/]{20,})"),
    Rule("secret.stripe_key", "stripe_key",
         r"(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{16,}", version="2"),
    Rule("secret.stripe_webhook_secret", "stripe_key", r"whsec_[0-9A-Za-z]{24,}", version="2"),
    Rule("secret.anthropic_api_key", "anthropic_api_key",
         r"sk-ant-[a-z]{3,8}[0-9]{2}-" + _TOKEN_CHARS + "{40,}", version="2"),
    Rule("secret.openai_api_key", "openai_api_key",
         # Found glued to other text too, so plain `sk-` needs a key's mix of upper and
         # lower case and digits (`task-management-system-...` is not one).
         r"sk-(?:proj-|svcacct-|admin-)?" + _TOKEN_CHARS + "{20,}",
         check=v.check_mixed, version="2"),
    Rule("secret.npm_token", "npm_token", r"npm_[0-9A-Za-z]{36}", version="2"),
    Rule("secret.pypi_token", "pypi_token", r"pypi-AgE" + _TOKEN_CHARS + "{50,}", version="2"),
    Rule("secret.vault_token", "vault_token", r"hv[sbr]\." + _TOKEN_CHARS + "{24,}", version="2"),
    Rule("secret.twilio_api_key", "twilio_api_key", r"SK[0-9a-fA-F]{32}", version="2"),
    Rule("secret.sendgrid_api_key", "sendgrid_api_key",
         r"SG\." + _TOKEN_CHARS + r"{16,32}\." + _TOKEN_CHARS + "{16,64}", version="2"),
    Rule("secret.mailgun_api_key", "mailgun_api_key", r"\bkey-[0-9a-f]{32}\b"),
    Rule("secret.mailchimp_api_key", "mailchimp_api_key", r"\b[0-9a-f]{32}-us[0-9]{1,2}\b"),
    Rule("secret.huggingface_token", "huggingface_token",
         r"hf_[A-Za-z]{34,}", check=v.check_mixed, version="2"),
    Rule("secret.digitalocean_token", "digitalocean_token",
         r"do[opr]_v1_[0-9a-f]{64}", version="2"),
    Rule("secret.shopify_token", "shopify_token",
         r"shp(?:at|ca|pa|ss)_[0-9a-fA-F]{32}", version="2"),
    Rule("secret.atlassian_api_token", "atlassian_api_token",
         r"ATATT3[0-9A-Za-z_\-=]{100,}", version="2"),
    Rule("secret.databricks_token", "databricks_token", r"\bdapi[0-9a-f]{32}"),
    Rule("secret.linear_api_key", "linear_api_key", r"lin_api_[0-9A-Za-z]{40}", version="2"),
    Rule("secret.doppler_token", "doppler_token",
         r"dp\.(?:pt|st|sa|ct|scim|audit)\.[0-9A-Za-z]{40,}", version="2"),
    Rule("secret.square_token", "square_token",
         r"sq0(?:atp|csp)-" + _TOKEN_CHARS + "{22,}", version="2"),
    Rule("secret.telegram_bot_token", "telegram_bot_token",
         r"\b[0-9]{8,10}:AA" + _TOKEN_CHARS + "{33}"),
    Rule("secret.postman_api_key", "postman_api_key",
         r"PMAK-[0-9a-f]{24}-[0-9a-f]{34}", version="2"),
    Rule("secret.grafana_token", "grafana_token",
         r"(?:glsa_[0-9A-Za-z]{32}_[0-9a-fA-F]{8}|glc_[0-9A-Za-z+/]{32,}={0,2})", version="2"),
    Rule("secret.new_relic_key", "new_relic_key", r"NRAK-[0-9A-Z]{27}", version="2"),
    Rule("secret.sentry_token", "sentry_token", r"sntr[ysu]_[0-9A-Za-z+/=_\-]{40,}", version="2"),
    Rule("secret.heroku_token", "heroku_token", r"HRKU-" + _TOKEN_CHARS + "{40,}", version="2"),
    Rule("secret.age_secret_key", "age_secret_key", r"AGE-SECRET-KEY-1[0-9A-Z]{58}", version="2"),
    Rule("secret.dropbox_token", "dropbox_token", r"sl\." + _TOKEN_CHARS + "{130,}", version="2"),
    Rule(
        "secret.jwt",
        "jwt",
        r"eyJ" + _TOKEN_CHARS + r"{5,}\." + _TOKEN_CHARS + r"{5,}\." + _TOKEN_CHARS + "*"
        r"(?:\." + _TOKEN_CHARS + r"*\." + _TOKEN_CHARS + "*)?",
        version="2",
    ),
)
# fmt: on

PII_RULES: tuple[Rule, ...] = (
    Rule(
        "pii.email",
        "email",
        # Non-ASCII letters (as UTF-8 bytes) count: lukasz and łukasz are both someone.
        r"[A-Za-z0-9_\x80-\xff][A-Za-z0-9_.%+\-\x80-\xff]{0,63}@"
        r"[A-Za-z0-9\x80-\xff][A-Za-z0-9\-\x80-\xff]{0,62}"
        r"(?:\.[A-Za-z0-9\x80-\xff][A-Za-z0-9\-\x80-\xff]{0,62})*\.[A-Za-z]{2,24}\b",
        normalize=str.lower,
    ),
    Rule("pii.us_ssn", "us_ssn", r"\b[0-9]{3}-[0-9]{2}-[0-9]{4}\b", check=v.check_ssn),
    Rule(
        "pii.payment_card",
        "payment_card",
        r"\b(?:[0-9]{13,19}|[0-9]{4}[ \-][0-9]{4,6}[ \-][0-9]{4,5}(?:[ \-][0-9]{1,4}){0,2})\b",
        check=v.check_card,
        mask=v.mask_card,
        normalize=v.digits_of,
    ),
    Rule(
        "pii.phone_nanp",
        "phone",
        r"(?:\+1[ .\-]?)?(?:\([2-9][0-9]{2}\)[ .\-]?|\b[2-9][0-9]{2}[ .\-])"
        r"[0-9]{3}[ .\-][0-9]{4}\b",
        check=v.check_nanp_phone,
        normalize=v.normalize_phone,
    ),
    Rule(
        "pii.phone_international",
        "phone",
        r"\+[1-9][0-9]{0,2}[ .\-]?(?:\([0-9]{1,4}\)[ .\-]?)?[0-9]{1,4}(?:[ .\-]?[0-9]{2,4}){1,5}\b",
        check=v.check_intl_phone,
        normalize=v.digits_of,
    ),
    Rule(
        "pii.iban",
        "iban",
        r"\b[A-Z]{2}[0-9]{2}(?: ?[0-9A-Z]){11,30}",
        check=v.check_iban,
        normalize=lambda s: s.replace(" ", ""),
    ),
)

DEFAULT_RULES: tuple[Rule, ...] = (_MARKER, *SECRET_RULES, *PII_RULES)
"""Every rule, marker-skipping first. Rule ids are stable; see docs/redaction.md."""

MIN_DETECTABLE = 5
"""No rule matches fewer characters (`pwd=x`), so shorter strings are not scanned."""
