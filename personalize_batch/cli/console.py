"""`pbatch console`: the local web console."""

from __future__ import annotations

import click

from .common import main


@main.command()
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8765,
    show_default=True,
    help="Port on 127.0.0.1 (0: any free port). The console never listens elsewhere.",
)
def console(port: int) -> None:
    """Serve a web console on 127.0.0.1: list, inspect, create and delete batch inference
    jobs.

    \b
    Examples:
      pbatch console
      pbatch console --port 0             # any free port
    """
    from ..console import make_console  # noqa: PLC0415

    try:
        server = make_console(port)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}") from None
    click.echo(f"pbatch console: http://127.0.0.1:{server.server_port}/ (Ctrl-C to stop)", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo("pbatch console: stopped", err=True)
    finally:
        server.server_close()
