"""How a command ends when it does not simply succeed (README "Exit codes")."""

from __future__ import annotations

import sys

import click

PARTLY_DONE = 3


def fail(message: str, code: int = 1) -> None:
    """One line on stderr, `error: ` first, and exit with `code`."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)
