"""Reading a local source file, with the one clear error every file source gives."""

from __future__ import annotations

from pathlib import Path

from pbrbot.sources import SourceError


def read_local(path: str | Path) -> bytes:
    path = Path(path)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise SourceError(f"{path}: no such file; check the path") from None
    except IsADirectoryError:
        raise SourceError(f"{path}: is a folder, expected a file") from None
    except OSError as exc:
        raise SourceError(f"{path}: cannot read ({exc.strerror or exc})") from None


def suffix(spec: str) -> str:
    return Path(spec).suffix.lower()
