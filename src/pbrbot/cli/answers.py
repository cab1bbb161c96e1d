"""CLI commands: answers."""

COMMANDS: list = []
