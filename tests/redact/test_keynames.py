"""Field names that say a value is a secret, and the look-alikes that do not."""

from __future__ import annotations

import pytest

from mcp_notary.redact.keynames import sensitive_key_kind


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("password", "password"), ("db_password", "password"), ("PGPASSWORD", "password"),
        ("MYSQL_PWD", "password"), ("passwd", "password"), ("newPassword", "password"),
        ("password_confirmation", "password"), ("password_hash", "password"),
        ("secret", "secret"), ("client_secret", "secret"), ("clientSecret", "secret"),
        ("token", "token"), ("access_token", "token"), ("refreshToken", "token"),
        ("GITHUB_TOKEN", "token"), ("X-Auth-Token", "token"), ("apitoken", "token"),
        ("api_key", "api_key"), ("apiKey", "api_key"), ("X-Api-Key", "api_key"),
        ("APIKey", "api_key"), ("apikey", "api_key"), ("private_key", "private_key"),
        ("secret_access_key", "key"), ("AWS_SECRET_ACCESS_KEY", "key"), ("AccountKey", "key"),
        ("Ocp-Apim-Subscription-Key", "key"), ("authorization", "authorization"),
        ("Proxy-Authorization", "authorization"), ("auth", "authorization"),
        ("cookie", "cookie"), ("Set-Cookie", "cookie"), ("credentials", "credential"),
        ("session_id", "session_id"), ("JSESSIONID", "session_id"), ("sig", "signature"),
        ("ssn", "us_ssn"), ("cvv", "card_cvv"), ("security_code", "card_cvv"), ("pin", "pin"),
        ("otp", "otp"),
    ],
)  # fmt: skip
def test_secret_names(name: str, kind: str) -> None:
    assert sensitive_key_kind(name) == kind


@pytest.mark.parametrize(
    "name",
    [
        "max_tokens", "tokens", "token_count", "token_type", "tokenizer", "input_tokens",
        "password_policy", "password_length", "passwordless", "password_reset_url",
        "secret_name", "secretArn", "author", "authority", "key", "primary_key", "sort_key",
        "keyboard", "compass", "bypass", "pinned", "spin", "signature_version", "name", "",
        "x" * 80,
    ],
)  # fmt: skip
def test_look_alike_names(name: str) -> None:
    assert sensitive_key_kind(name) is None
