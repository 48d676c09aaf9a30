"""Store backends and the one function that picks a backend from a store URL."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import platformdirs

from mcp_notary.errors import ConfigError
from mcp_notary.ledger.store import Store
from mcp_notary.ledger.stores.sqlite import SQLiteStore

STORE_ENV = "MCP_NOTARY_STORE"


def default_store_url() -> str:
    """`$MCP_NOTARY_STORE`, else `audit.db` in the per-user data directory."""
    env = os.environ.get(STORE_ENV)
    if env:
        return env
    return str(Path(platformdirs.user_data_dir("mcp-notary")) / "audit.db")


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite store URL (`sqlite:///abs/path`, `sqlite:rel/path` or a bare
    path), or None for another backend."""
    url = url.split("?", 1)[0] if url.startswith("sqlite:") else url
    if url.startswith("sqlite:///"):
        return Path(url[len("sqlite://") :])
    if url.startswith("sqlite:"):
        return Path(url[len("sqlite:") :])
    if "://" in url:
        return None
    return Path(url)


def _sqlite_options(url: str) -> dict[str, int]:
    """`?busy_timeout_ms=N`: how long a writer waits for another process's commit."""
    query = urlsplit(url).query if url.startswith("sqlite:") else ""
    options: dict[str, int] = {}
    for key, values in parse_qs(query).items():
        if key != "busy_timeout_ms" or not values[-1].isdigit():
            raise ConfigError(f"unsupported SQLite store option {key}={values[-1]!r}")
        options[key] = int(values[-1])
    return options


def open_store(url: str | None = None, *, readonly: bool = False, strict: bool = False) -> Store:
    """Open the store named by `url` (default: `default_store_url()`)."""
    url = url or default_store_url()
    path = sqlite_path(url)
    if path is not None:
        return SQLiteStore(
            path.expanduser(),
            readonly=readonly,
            synchronous="FULL" if strict else "NORMAL",
            **_sqlite_options(url),
        )
    scheme = url.split("://", 1)[0]
    if scheme in ("postgresql", "postgres"):
        # Imported here so the embedded store works without the PostgreSQL driver loaded.
        from mcp_notary.ledger.stores.postgres import open_postgres

        return open_postgres(url, readonly=readonly)
    raise ConfigError(
        f"unsupported store URL scheme {scheme!r}: use a file path, sqlite:/// or postgresql://"
    )
