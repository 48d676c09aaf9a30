"""The exception hierarchy. The library raises; only the CLI turns errors into exit codes.

NotaryError
├── ConfigError        bad configuration or arguments
├── StoreError         the audit store cannot be opened, read or appended to
│   └── StoreVersionError   the store was written by an incompatible schema version
└── IntegrityError     stored evidence does not verify
"""

from __future__ import annotations


class NotaryError(Exception):
    """Base class of every error mcp-notary raises on purpose."""

    def diagnostics(self) -> str:
        """A readable explanation for a person at a terminal."""
        return str(self)


class ConfigError(NotaryError):
    """Configuration or command-line input that cannot be used."""


class StoreError(NotaryError):
    """The audit store failed."""


class StoreVersionError(StoreError):
    """The store's schema version is not one this release can open."""


class IntegrityError(NotaryError):
    """Stored evidence does not verify."""
