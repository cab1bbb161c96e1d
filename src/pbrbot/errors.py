"""Errors that reach the user as one clear line saying what to do next."""

import errno


class PbrbotError(Exception):
    """An expected failure: the message is shown as is, without a traceback."""

    exit_code = 1


class ConfigError(PbrbotError):
    exit_code = 2


def valid_text(text: str, what: str) -> str:
    """`text` if it is valid Unicode, else a PbrbotError naming `what`. Invalid UTF-8 given as an argument
    arrives as lone surrogates (Python's surrogateescape), which the tokenizer refuses with a TypeError."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise PbrbotError(f"{what} is not valid UTF-8 (character {exc.start + 1}); write it in UTF-8 and try "
                          "again") from None
    return text


def disk_full(exc: BaseException) -> str | None:
    """The one line to show for a full disk (SQLite's "database or disk is full", OSError ENOSPC, or the
    "disk I/O error" SQLite gives when it cannot even open its shared-memory file), else None.
    Nothing is half-written by then: SQLite rolls the transaction back, index files are replaced
    atomically."""
    if "disk I/O error" in str(exc):
        return "SQLite reported a disk I/O error: check the disk (full? failing?) and run the command again"
    full = (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or "database or disk is full" in str(exc)
    if not full:
        return None
    filename = getattr(exc, "filename", None)
    where = f" ({filename})" if filename else ""
    return (f"the disk is full{where}; what was stored before is intact: free some space and run the "
            "command again")
