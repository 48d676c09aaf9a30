"""`mcp-notary serve`: the read API and the web console for auditors."""

from __future__ import annotations

import ipaddress

import click
from rich.console import Console

from mcp_notary.access.readside import open_read_side
from mcp_notary.anchor import open_anchor
from mcp_notary.cli.lifecycle import prepare_for_pruning
from mcp_notary.cli.main import store_option
from mcp_notary.cli.read import build_index
from mcp_notary.cli.stopping import Stopped, stop_on_signals
from mcp_notary.cli.verify import origin_prefix_option, resolve_trusted_keys, trusted_key_option
from mcp_notary.config import NotaryConfig
from mcp_notary.errors import ConfigError
from mcp_notary.identity.local import os_principal
from mcp_notary.identity.tokens import TokenVerifier
from mcp_notary.lifecycle.policy import RetentionPolicy
from mcp_notary.lifecycle.schedule import scheduled_retention
from mcp_notary.server import ReadService, ServerSettings, create_app


def _listen(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--listen: {value!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _oidc(issuer: str | None, audience: str | None) -> TokenVerifier | None:
    if issuer is None:
        return None
    if audience is None:
        raise ConfigError("--oidc-issuer needs --oidc-audience (this server's resource id)")
    import httpx2

    from mcp_notary.identity.tokens import JWTVerifier

    return JWTVerifier(issuer, audience, httpx2.AsyncClient(timeout=10))


@click.command()
@store_option
@click.option("--listen", default="127.0.0.1:8400", show_default=True, metavar="HOST:PORT")
@trusted_key_option
@origin_prefix_option
@click.option(
    "--anchor",
    "anchors",
    multiple=True,
    metavar="DIR|s3://BUCKET/PREFIX",
    help="Check checkpoints against the copies there (repeatable).",
)
@click.option("--oidc-issuer", metavar="URL", help="Also accept this issuer's JWT access tokens.")
@click.option("--oidc-audience", metavar="AUD", help="The audience those tokens must name.")
@click.option("--ssl-certfile", type=click.Path(dir_okay=False, exists=True), help="Serve HTTPS.")
@click.option("--ssl-keyfile", type=click.Path(dir_okay=False, exists=True))
@click.option("--config", "config_path", type=click.Path(dir_okay=False, exists=True),
              help="mcp-notary.toml ([retention], for --retention-every).")  # fmt: skip
@click.option(
    "--retention-every",
    type=click.FloatRange(min=0, min_open=True),
    metavar="HOURS",
    help="Apply the [retention] policy of --config every HOURS (first run after one interval); "
    "each run is recorded on the server's reader stream.",
)
def serve(
    store: str | None,
    listen: str,
    trusted_keys: tuple[str, ...],
    origin_prefix: str,
    anchors: tuple[str, ...],
    oidc_issuer: str | None,
    oidc_audience: str | None,
    ssl_certfile: str | None,
    ssl_keyfile: str | None,
    config_path: str | None,
    retention_every: float | None,
) -> None:
    """Serve the JSON API (/api/..., OpenAPI at /openapi.json) and the web console (/console).

    Callers authenticate with API tokens (`mcp-notary access token create`); every read,
    allowed or refused, is recorded in the trail as an audit_access event.
    """
    import uvicorn

    host, port = _listen(listen)
    tls = ssl_certfile is not None
    err = Console(stderr=True)
    if not _loopback(host) and not tls:
        err.print(
            f"[yellow]warning:[/] serving on {host} without TLS: tokens and audit data cross "
            "the network in clear. Use --ssl-certfile/--ssl-keyfile or a TLS proxy."
        )
    policy = None
    if retention_every is not None:
        policy = RetentionPolicy.from_mapping(NotaryConfig.load(config_path).retention)
    keys, key_sources = resolve_trusted_keys(trusted_keys)
    settings = ServerSettings(
        trusted_keys=tuple(keys),
        trusted_key_sources=tuple(key_sources),
        anchors=tuple(open_anchor(url) for url in anchors),
        origin_prefix=origin_prefix,
        secure_cookies=tls,
    )
    side = open_read_side(
        store,
        process_principal=os_principal(),
        interface="api",
        label="mcp-notary serve",
        oidc=_oidc(oidc_issuer, oidc_audience),
    )
    try:
        engine = side.query_engine()
    except BaseException:
        side.close()
        raise
    schedule = None
    try:
        if policy is not None and retention_every is not None:
            prepare_for_pruning(store)
            principal = os_principal()
            schedule = scheduled_retention(
                policy,
                retention_every,
                side.store,
                lambda details: side.auditor.append(
                    "retention", details, principal=principal, method="lifecycle/retention"
                ),
                lambda message: err.print(f"[red]{message}[/]"),
            )
        build_index(engine)
        app = create_app(ReadService(side, engine, settings))
        scheme = "https" if tls else "http"
        err.print(f"mcp-notary console on {scheme}://{listen}/console  (API: /api, /openapi.json)")
        stop_on_signals()
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_level="warning",
            ssl_certfile=ssl_certfile,
            ssl_keyfile=ssl_keyfile,
            server_header=False,
        )
    except Stopped:
        pass  # a clean stop: seal the reader stream below
    finally:
        if schedule is not None:
            schedule.close()
        engine.close()
        side.close()


__all__ = ["serve"]
