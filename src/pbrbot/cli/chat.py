"""CLI commands: chat."""

COMMANDS: list = []
