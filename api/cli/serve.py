"""``gridmkt serve``: run the HTTP API with uvicorn."""

from __future__ import annotations

import copy

import click

from api.cli import cli, settings
from api.cli.output import command, dumps


@command(cli, "serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="TCP port.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Worker processes (background jobs run inside each worker).")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]))
def serve(ctx, host: str, port: int, workers: int, log_level: str):
    """Serve the API (OpenAPI docs at /docs) until interrupted; with --json, first print where.

    Behind a TLS-terminating reverse proxy, list it in GRIDMKT_TRUSTED_PROXIES: only then are its
    X-Forwarded-For / X-Forwarded-Proto headers believed (client address for sign-in limits,
    Secure session cookie)."""
    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    from api.app import create_app

    log_config = copy.deepcopy(LOGGING_CONFIG)
    if ctx.as_json:
        # uvicorn writes access lines to stdout; --json keeps stdout for its one object.
        log_config["handlers"]["access"]["stream"] = "ext://sys.stderr"
        click.echo(dumps({"ok": True, "url": f"http://{host}:{port}", "docs": f"http://{host}:{port}/docs",
                          "workers": workers}))
        ctx.printed = True
    # uvicorn's own X-Forwarded-* handling trusts 127.0.0.1 by default: any local client could claim
    # another address. The app reads those headers itself, from GRIDMKT_TRUSTED_PROXIES only.
    opts = dict(host=host, port=port, log_level=log_level, log_config=log_config, proxy_headers=False)
    if workers == 1:
        uvicorn.run(create_app(settings()), **opts)
    else:
        # Each worker process builds its own app (and engine) from the environment.
        uvicorn.run("api.app:create_app", factory=True, workers=workers, **opts)
    from api.cli.demo import after_serving

    return None if ctx.as_json else after_serving(settings())
