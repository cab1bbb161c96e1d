"""CLI commands: search."""

COMMANDS: list = []
