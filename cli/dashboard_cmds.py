"""`tape dashboard`: what `tape watch` shows, as a web page that updates itself (store/dashboard.py)."""

from __future__ import annotations

from typing import Annotated

import typer

from tape.cli.common import console, settings
from tape.cli.options import finite


def dashboard_cmd(
    ctx: typer.Context,
    host: Annotated[
        str,
        typer.Option("--host", help="Address to listen on; anything but loopback needs --token."),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port (0: any free port).")] = 8765,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="TAPE_DASHBOARD_TOKEN",
            help="Secret every request must carry (?token=... or Authorization: Bearer).",
            show_default=False,
        ),
    ] = None,
    run: Annotated[
        str | None,
        typer.Option("--run", help="Run id (or a unique prefix); default: the newest trading session."),
    ] = None,
    interval: Annotated[
        float, typer.Option("--interval", min=0.1, callback=finite, help="Seconds between reads of the log.")
    ] = 0.5,
) -> None:
    """A live web page of a run: positions, P&L, equity, decisions, alerts and actor health.

    What `tape watch` shows, pushed to the page (server-sent events) as the log grows, for a running
    session or a finished log; it reads the log only. Loopback by default: any other --host needs a
    token, which every request must then carry."""
    import socket

    import uvicorn

    from tape.store.dashboard import check_bind, dashboard_app

    check_bind(host, token)
    app = dashboard_app(settings(ctx).log_path, run=run, token=token, interval=interval)
    # The socket is bound here so a busy port is one clear error and port 0 can print the port it got.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)  # listening before the address is printed: a client may connect at once
    except OSError as exc:
        sock.close()
        from tape.events.errors import ConfigError

        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    console.print(f"dashboard of {settings(ctx).log_path} on http://{shown}:{bound}/", highlight=False)
    if token:
        console.print("every request must carry the token (?token=... or Authorization: Bearer)")
    console.print("Ctrl-C stops it", style="dim")
    # Open event streams never end by themselves: on Ctrl-C they get a moment, then are closed.
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    server.run(sockets=[sock])
