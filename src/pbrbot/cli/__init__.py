"""The `pbrbot` command. Each command delegates to the engine in a few lines; see the modules beside this one.

Exit codes (README "Exit codes"): 0 done, 1 error, 2 bad usage or settings, 3 partly done (exits.PARTLY_DONE).
"""

from __future__ import annotations

import importlib
import logging
import sqlite3
import sys
import threading
from pathlib import Path

import click

from pbrbot.cli.exits import fail
from pbrbot.config import load_settings
from pbrbot.errors import PbrbotError, disk_full
from pbrbot.services import Services

log = logging.getLogger("pbrbot")

# Commands that only read the archive: it is opened read-only (so a read-only archive can be read) and
# never created; ask/define/search/eval may still build a first archive or index (Services.ensure_index).
READERS = {"posts", "show", "feedback", "terms", "ask", "define", "search", "eval", "latest"}
# The module of each command (pbrbot.cli.<module>.COMMANDS), imported when the command runs or help lists it:
# an answer does not pay for importing what ingest, watch, run, bench or fit need.
COMMAND_MODULES = {
    "ingest": "archive", "posts": "archive", "show": "archive",
    "index": "search", "search": "search",
    "ask": "answers", "latest": "answers", "define": "answers", "terms": "answers", "eval": "answers",
    "run": "chat", "sync-commands": "chat", "feedback": "chat",
    "watch": "alerts", "bench": "bench", "export-onnx": "bench", "fit": "fitting",
    "gaps": "moderation", "curate": "moderation",
}


def warm_model(services) -> None:
    """Load the embedding model (tokenizer, onnxruntime session) on a thread of its own while this one opens
    the archive and imports the search: a cold `pbrbot ask` waits for the longer of the two, not their sum.
    An error is left for the command's own use of the model to report; an index made with other vectors
    is the command's to report before any model is built (nothing is warmed then)."""
    from pbrbot.embedding import embedder_name
    from pbrbot.errors import PbrbotError
    from pbrbot.vectors import Manifest, check_compatible

    try:
        manifest = Manifest.read(Path(services.settings.data_dir))
        if manifest is not None:
            check_compatible(manifest, embedder_name(services.settings), None)
    except PbrbotError:
        return

    def load() -> None:
        try:
            warm = getattr(services.embedder, "warm", None)
            if warm is not None:
                warm()
        except Exception:  # raised again, as one line, where the command needs the model
            log.debug("loading the model ahead failed", exc_info=True)

    threading.Thread(target=load, name="pbrbot-warm-model").start()


class Group(click.Group):
    """Turns expected errors into one line on stderr (`error: ...`) and a non-zero exit, never a traceback."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as exc:
            if exc.ctx is not None:
                click.echo(exc.ctx.get_usage(), err=True)
                click.echo(f"Try '{exc.ctx.command_path} --help' for help.", err=True)
            fail(exc.format_message(), exc.exit_code)
        except click.ClickException as exc:
            fail(exc.format_message(), exc.exit_code)
        except click.Abort:
            fail("stopped", 1)
        sys.exit(code if isinstance(code, int) else 0)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMAND_MODULES, *self.commands})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.commands and name in COMMAND_MODULES:
            for command in importlib.import_module(f"pbrbot.cli.{COMMAND_MODULES[name]}").COMMANDS:
                self.add_command(command)
        return self.commands.get(name)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except PbrbotError as exc:
            fail(str(exc), exc.exit_code)
        except (sqlite3.Error, OSError) as exc:  # the archive or a file the user named, not a bug in pbrbot
            if (message := disk_full(exc)) is not None:
                fail(message)
            log.debug("failed", exc_info=True)
            fail(f"{exc} (run `pbrbot -v ...` for the details)")


@click.group(cls=Group)
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="Data directory (default: $PBRBOT_DATA_DIR, else index/ when the current directory has a "
                   "pbrbot index/ folder, else $XDG_DATA_HOME/pbrbot).")
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
@click.version_option(package_name="pbrbot")
@click.pass_context
def main(ctx: click.Context, data_dir: Path | None, verbose: bool) -> None:
    """pbrbot: quoted, linked answers from the russellwebster.com archive."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings(data_dir=data_dir)  # ConfigError (exit 2) naming the PBRBOT_* variable
    services = Services(settings, readonly=ctx.invoked_subcommand in READERS)
    ctx.obj = services
    ctx.call_on_close(services.close)

