"""`mcp-notary proxy --upstream URL`: audit a remote (HTTP) MCP server as a reverse proxy."""

from __future__ import annotations

import os
import sys
from typing import Any
from urllib.parse import urlsplit

import click
import httpx2

from mcp_notary.capture.http import (
    DEFAULT_BODY_TIMEOUT_S,
    DEFAULT_MAX_AUDITED_BODY,
    AuditingProxy,
    ProxySettings,
)
from mcp_notary.cli.lifecycle import prepare_for_pruning
from mcp_notary.cli.main import store_option
from mcp_notary.cli.stopping import Stopped, stop_on_signals
from mcp_notary.config import NotaryConfig
from mcp_notary.errors import ConfigError
from mcp_notary.events.build import CaptureContext
from mcp_notary.identity.bearer import BearerAuthenticator
from mcp_notary.identity.principal import Principal
from mcp_notary.identity.tokens import IntrospectionVerifier, JWTVerifier, TokenVerifier
from mcp_notary.ledger.stores import open_store
from mcp_notary.lifecycle.policy import RetentionPolicy
from mcp_notary.lifecycle.schedule import scheduled_retention
from mcp_notary.recorder import (
    AuditRecorder,
    key_file_checkpointing,
    redactor_from_config,
    sealing_from_config,
)


def _listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise click.BadParameter("expected HOST:PORT, e.g. 127.0.0.1:8080")
    return host.strip("[]") or "127.0.0.1", int(port)


def _env_secret(name: str | None, what: str) -> str | None:
    if name is None:
        return None
    value = os.environ.get(name)
    if not value:
        raise ConfigError(f"{what}: environment variable {name} is not set")
    return value


@click.command()
@click.option("--upstream", required=True, metavar="URL", help="The MCP server's URL.")
@click.option("--listen", default="127.0.0.1:8080", show_default=True, metavar="HOST:PORT")
@store_option
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="mcp-notary.toml")
@click.option("--server-name", help="Name recorded for the server (default: its serverInfo).")
@click.option(
    "--auth",
    "auth_mode",
    type=click.Choice(["off", "observe", "require"]),
    default="off",
    show_default=True,
    help="Bearer-token validation. require: refuse missing or invalid tokens with 401. "
    "observe: forward, record the caller as unauthenticated. off: record no identity.",
)
@click.option("--issuer", metavar="URL", help="Token issuer (`iss`), for JWT validation.")
@click.option(
    "--audience",
    metavar="URL",
    help="The resource the tokens must be minted for: the canonical URL clients connect to.",
)
@click.option("--jwks-url", metavar="URL", help="JWKS location (default: issuer discovery).")
@click.option("--leeway", type=float, default=60.0, show_default=True, help="Clock skew, s.")
@click.option("--introspection-url", metavar="URL", help="RFC 7662 endpoint (opaque tokens).")
@click.option("--introspection-client-id", metavar="ID")
@click.option(
    "--introspection-secret-env", metavar="VAR", help="Env var holding the client secret."
)
@click.option("--resource-metadata", metavar="URL", help="resource_metadata URL in 401s.")
@click.option(
    "--upstream-token-env",
    metavar="VAR",
    help="Env var holding the upstream's own credential; replaces the client's token "
    "(deployment with a separate upstream credential).",
)
@click.option(
    "--rewrite-host", is_flag=True, help="Send the upstream's host in Host (default: keep)."
)
@click.option("--max-audited-body", type=int, default=DEFAULT_MAX_AUDITED_BODY, show_default=True)
@click.option("--body-timeout", type=float, default=DEFAULT_BODY_TIMEOUT_S, show_default=True)
@click.option(
    "--retention-every",
    type=click.FloatRange(min=0, min_open=True),
    metavar="HOURS",
    help="Apply the [retention] policy of --config to the store every HOURS (first run after "
    "one interval); each run is recorded on this proxy's stream.",
)
def proxy(
    upstream: str,
    listen: str,
    store: str | None,
    config_path: str | None,
    server_name: str | None,
    auth_mode: str,
    issuer: str | None,
    audience: str | None,
    jwks_url: str | None,
    leeway: float,
    introspection_url: str | None,
    introspection_client_id: str | None,
    introspection_secret_env: str | None,
    resource_metadata: str | None,
    upstream_token_env: str | None,
    rewrite_host: bool,
    max_audited_body: int,
    body_timeout: float,
    retention_every: float | None,
) -> None:
    """Reverse-proxy the Streamable HTTP (or legacy HTTP+SSE) MCP server at URL and audit
    every message. Clients connect to --listen with the same paths as the upstream."""
    import uvicorn

    host, port = _listen(listen)
    parts = urlsplit(upstream)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"--upstream must be an http(s) URL, got {upstream!r}")
    if auth_mode != "off" and not audience:
        raise ConfigError("--auth needs --audience (the URL the tokens are minted for)")
    if auth_mode != "off" and not (issuer or introspection_url):
        raise ConfigError("--auth needs --issuer (JWT) or --introspection-url (opaque tokens)")
    upstream_token = _env_secret(upstream_token_env, "--upstream-token-env")
    config = NotaryConfig.load(config_path)
    policy = RetentionPolicy.from_mapping(config.retention) if retention_every else None
    http = httpx2.AsyncClient(timeout=10.0, trust_env=False)  # for the issuer, not upstream
    authenticator = None
    if auth_mode != "off":
        assert audience is not None
        verifier: TokenVerifier
        if introspection_url:
            verifier = IntrospectionVerifier(
                introspection_url,
                http,
                client_id=introspection_client_id,
                client_secret=_env_secret(introspection_secret_env, "--introspection-secret-env"),
                audience=audience,
                issuer=issuer,
            )
        else:
            assert issuer is not None
            verifier = JWTVerifier(issuer, audience, http, jwks_url=jwks_url, leeway=leeway)
        authenticator = BearerAuthenticator(
            verifier,
            "require" if auth_mode == "require" else "observe",
            resource_metadata=resource_metadata,
        )
    recorder = AuditRecorder(
        open_store(store or config.store),
        redactor_from_config(config),
        CaptureContext(
            principal=Principal("unknown", "unknown", "none"),
            transport="http",
            server_name=server_name,
            launch={"upstream": f"{parts.scheme}://{parts.netloc}{parts.path}", "listen": listen},
        ),
        stream_label=server_name or parts.netloc,
        checkpointing=key_file_checkpointing(),
        sealing=sealing_from_config(config),
    )
    settings = ProxySettings(
        upstream=upstream,
        max_audited_body=max_audited_body,
        body_timeout=body_timeout,
        preserve_host=not rewrite_host,
        upstream_authorization=f"Bearer {upstream_token}" if upstream_token else None,
    )
    app = AuditingProxy(settings, recorder, authenticator=authenticator)
    server_config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        lifespan="on",
        server_header=False,  # the upstream's own Server and Date headers pass through
        date_header=False,
        timeout_graceful_shutdown=5,
        **_fast_stack(),
    )
    recorder.start()
    schedule = None
    if retention_every is not None and policy is not None:
        prepare_for_pruning(store or config.store)
        schedule = scheduled_retention(
            policy,
            retention_every,
            recorder.store,
            lambda details: recorder.record_event("retention", details).result(timeout=60),
            lambda message: click.echo(f"mcp-notary: {message}", err=True),
        )
    reason = "stopped"
    stop_on_signals()
    try:
        uvicorn.Server(server_config).run()
    except Stopped as stop:
        reason = f"signal {stop.signum}"
    except BaseException as exc:
        reason = f"error: {type(exc).__name__}"
        raise
    finally:
        if schedule is not None:
            schedule.close()
        recorder.close(reason)
        recorder.store.close()
    sys.exit(0)


def _fast_stack() -> dict[str, Any]:
    """uvloop and httptools when installed (they are optional extras of uvicorn)."""
    options: dict[str, Any] = {}
    try:
        import uvloop  # noqa: F401

        options["loop"] = "uvloop"
    except ImportError:
        pass
    try:
        import httptools  # noqa: F401

        options["http"] = "httptools"
    except ImportError:
        pass
    return options
