"""CLI commands: alerts."""

COMMANDS: list = []
