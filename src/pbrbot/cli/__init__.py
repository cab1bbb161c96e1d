"""The `pbrbot` command. Each command delegates to the engine in a few lines; see the modules beside this one."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from pbrbot.config import load_settings
from pbrbot.errors import PbrbotError
from pbrbot.services import Services


class Group(click.Group):
    """Turns expected errors into one line on stderr and a non-zero exit, never a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except PbrbotError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)


@click.group(cls=Group)
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Data directory (default: $PBRBOT_DATA_DIR or index/).")
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
@click.version_option(package_name="pbrbot")
@click.pass_context
def main(ctx: click.Context, data_dir: Path | None, verbose: bool) -> None:
    """pbrbot: quoted, linked answers from the russellwebster.com archive."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings(data_dir=data_dir)
    except Exception as exc:  # pydantic validation of PBRBOT_* variables
        raise click.ClickException(f"bad settings: {exc}") from None
    services = Services(settings)
    ctx.obj = services
    ctx.call_on_close(services.close)


def _register() -> None:
    from pbrbot.cli import alerts, answers, archive, bench, chat, fitting, search

    for module in (archive, search, answers, chat, alerts, bench, fitting):
        for command in module.COMMANDS:
            main.add_command(command)


_register()
