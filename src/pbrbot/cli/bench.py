"""CLI commands: bench."""

COMMANDS: list = []
