"""How a command ends when it does not simply succeed (README "Exit codes")."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

import click

PARTLY_DONE = 3


def echo_list(rows: Sequence[Any], as_json: bool, empty: str, line: Callable[[Any], str]) -> None:
    """A command's list: the rows as one JSON list, else a `line` a row, or `empty` when there are none."""
    if as_json:
        click.echo(json.dumps(list(rows), ensure_ascii=False))
        return
    if not rows:
        click.echo(empty)
    for row in rows:
        click.echo(line(row))


def fail(message: str, code: int = 1) -> None:
    """One line on stderr, `error: ` first, and exit with `code`."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)
