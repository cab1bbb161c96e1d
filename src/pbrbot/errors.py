"""Errors that reach the user as one clear line saying what to do next."""


class PbrbotError(Exception):
    """An expected failure: the message is shown as is, without a traceback."""

    exit_code = 1


class ConfigError(PbrbotError):
    exit_code = 2
