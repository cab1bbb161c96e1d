"""CLI commands: ask, define, terms, eval."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import click

from pbrbot.cli import warm_model
from pbrbot.cli.exits import echo_list
from pbrbot.errors import PbrbotError, valid_text
from pbrbot.models import Answer
from pbrbot.timeframe import show_date


def _notice(message: str) -> None:
    click.echo(message, err=True)


def _ready(services) -> None:
    warm_model(services)
    services.ensure_index(echo=_notice)


def quote_width() -> int | None:
    """Columns to wrap quotes at: the terminal's width, or None (no wrapping) when stdout is not a
    terminal."""
    if not sys.stdout.isatty():
        return None
    return max(40, shutil.get_terminal_size().columns - 1)


def render(answer: Answer, width: int | None = None) -> str:
    """An answer for the terminal: each quote as a block with its title, date and deep link; quotes are
    wrapped at `width` columns (None: one line each)."""
    lines: list[str] = []
    note = answer.read_note()
    if note:
        lines.append(note)
    if answer.taken_as:
        lines.append(f"Taken as: {answer.taken_as}")
    if answer.period:
        lines.append(f"{answer.period}.")
    if answer.taken_as or answer.period or answer.read_chars:
        lines.append("")
    if answer.glosses:
        lines.append("Glossary (its own words, not a quote from a post):")
        for g in answer.glosses:
            lines.append(click.wrap_text(f"{g.term}: {g.gloss}", width=width, initial_indent="  ",
                                         subsequent_indent="    ") if width else f"  {g.term}: {g.gloss}")
        lines.append("")
        if answer.found:
            lines.append("In the archive:")
    if answer.term:
        lines.append(f"{answer.term}:")
        if answer.gloss:
            lines.append(click.wrap_text(f"Glossary: {answer.gloss}", width=100, initial_indent="  ",
                                         subsequent_indent="  "))
        if not answer.found:
            lines.append("  The archive has no sentence that explains it.")
            return "\n".join(lines)
        lines.append("")
        lines.append("In the archive:")
    if not answer.found:
        lines.append("The archive has no answer to that.")
        if answer.related:
            lines.append("")
            lines.append("Related, not an answer:")
            lines.extend(f"  - {r.title}  {r.url}" for r in answer.related)
        return "\n".join(lines)
    for n, quote in enumerate(answer.quotes, start=1):
        if n > 1 or answer.term or answer.glosses:
            lines.append("")
        text = f"“{quote.text}”"
        lines.append(click.wrap_text(text, width=width, initial_indent="  ", subsequent_indent="  ")
                     if width else f"  {text}")
        lines.append(f"  — {quote.title} ({quote.label or show_date(quote.date) or 'undated'})")
        lines.append(f"    {quote.link}")
    return "\n".join(lines)


@click.command("ask")
@click.argument("question")
@click.option("--json", "as_json", is_flag=True,
              help="Print the answer as JSON. With QUESTION '-', read one question per line from stdin "
                   "and print one JSON object per line.")
@click.option("-n", "quotes", type=click.IntRange(1, 10), default=3, show_default=True, help="Most quotes.")
@click.option("--context", "context", type=click.Path(path_type=Path), default=None,
              help='Earlier turns of the conversation, a JSON file '
                   '[{"question": "...", "quotes": [...]}, ...] (quotes optional): QUESTION is read as a '
                   'follow-up; the JSON answer adds "taken_as" when they changed it.')
@click.option("--explain", is_flag=True, help="Also say why the answer ranked as it did: each quote's "
              "ranker features and score, the readers' votes and the moderators' pins (JSON: \"explain\").")
@click.option("--no-record", is_flag=True, help="Do not log the question for `pbrbot gaps` "
              "(PBRBOT_RECORD_QUESTIONS=false: never).")
@click.pass_obj
def ask_cmd(services, question: str, as_json: bool, quotes: int, context: Path | None, explain: bool,
            no_record: bool) -> None:
    """Answer QUESTION with quoted, linked excerpts from the archive. Periods it names ("in 2013", "since
    Transforming Rehabilitation", "last year") limit the posts quoted; "latest" puts the newest first."""
    turns = read_context(context) if context is not None else []
    if question != "-":  # a bad question is told before anything is loaded
        question = valid_text(question, "the question")
    _ready(services)
    asker = _asker(services, no_record)
    width = quote_width()
    if question == "-":
        _ask_lines(services, as_json, quotes, width, asker)
        return
    answer, why = services.conversation.explain(question, turns, n=quotes,
                                                asker=asker)
    if as_json:
        click.echo(json.dumps({**answer.to_json_dict(), **({"explain": why} if explain else {})},
                              ensure_ascii=False))
        return
    click.echo(render(answer, width))
    if explain:
        click.echo("\n" + render_explain(why))


class ContextError(PbrbotError):
    exit_code = 2


def read_context(path: Path) -> list:
    """The earlier turns in a --context file (ContextError, exit 2, when unreadable)."""
    from pbrbot.turns import turns_from_json

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise ContextError(f"cannot read the context file {path}: {reason}") from None
    except ValueError as exc:
        raise ContextError(f"the context file {path} is not JSON ({exc})") from None
    try:
        return turns_from_json(data)
    except PbrbotError as exc:
        raise ContextError(f"{path}: {exc}") from None


def _asker(services, no_record: bool):
    """Who is asking, for the questions log; None when not logging (asked not to, or the archive is
    read-only: then one notice)."""
    from pbrbot.store import ArchiveError
    from pbrbot.tuning import Asker

    if no_record or not services.settings.record_questions:
        return None
    try:
        services.writable()
    except ArchiveError:
        services.readonly = True
        _notice("note: the archive is read-only: the question is not logged for `pbrbot gaps`")
        return None
    return Asker("cli")


def render_explain(why: dict) -> str:
    """`ask --explain` for the terminal."""
    lines = ["Why this answer:"]
    if why["hidden_posts"]:
        lines.append(f"  hidden by moderators (left out): posts {', '.join(map(str, why['hidden_posts']))}")
    if not why["quotes"]:
        lines.append("  no quote passed the ranker's threshold"
                     + ("" if why["found"] else ": not in the archive"))
    for n, row in enumerate(why["quotes"], start=1):
        if row.get("pinned"):
            pin = row["pin"]
            lines.append(f"  {n}. pinned by {pin['by']} (pin {pin['id']}) for “{pin['question']}” "
                         f"(similarity {pin['similarity']:.2f})")
            continue
        votes = row["votes"]
        lines.append(f"  {n}. ranker score {row['ranker_score']:.3f} x votes {votes['factor']:.2f} "
                     f"({votes['up']} up, {votes['down']} down, net {votes['net']:+.2f}); "
                     f"passages {row['passage_ids']}")
        top = sorted(row["features"].items(), key=lambda kv: -abs(kv[1]))[:6]
        if top:
            lines.append("     features: " + ", ".join(f"{k} {v:.3f}" for k, v in top))
    return "\n".join(lines)


def _ask_lines(services, as_json: bool, quotes: int, width: int | None, asker=None) -> None:
    """One question per line of stdin, one output line per input line with --json (read as bytes: a line
    that is not UTF-8 is reported, one line on stderr and, with --json, {"line", "error"} in its place, and
    the others are answered; exit code 1). A blank line gives {"question": "", "error"} with --json."""
    bad = 0
    for n, raw in enumerate(sys.stdin.buffer, start=1):  # (click.get_binary_stream is deprecated)
        try:
            line = raw.decode("utf-8").strip()
        except UnicodeDecodeError as exc:
            bad += 1
            problem = f"line {n}: the question is not valid UTF-8 (byte {exc.start + 1}); it was skipped"
            click.echo(f"error: {problem}", err=True)
            if as_json:
                click.echo(json.dumps({"line": n, "error": problem}))
            continue
        if not line:
            if as_json:
                click.echo(json.dumps({"question": "", "error": "empty question"}))
            continue
        answer = services.conversation.ask(line, n=quotes, asker=asker)
        click.echo(json.dumps(answer.to_json_dict(), ensure_ascii=False) if as_json else
                   f"{line}\n{render(answer, width)}\n")
    if bad:
        sys.exit(1)


@click.command("latest")
@click.argument("topic", required=False, default="")
@click.option("-n", "count", type=click.IntRange(1, 25), default=5, show_default=True, help="Most posts.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of {title, url, date, shown}.")
@click.pass_obj
def latest_cmd(services, topic: str, count: int, as_json: bool) -> None:
    """List the newest posts on TOPIC (all posts without one). Only dated posts are listed; an estimated
    date shows as "c. March 2013"."""
    topic = valid_text(topic, "the topic")
    _ready(services)
    echo_list(services.conversation.latest(topic, n=count), as_json, "No dated post on that in the archive.",
              lambda post: f"{post['shown']:>18}  {post['title']}\n{'':20}{post['url']}")


@click.command("define")
@click.argument("term")
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON (with \"term\").")
@click.pass_obj
def define_cmd(services, term: str, as_json: bool) -> None:
    """What the archive says a piece of jargon (TERM, see `pbrbot terms`) means."""
    term = valid_text(term, "the term")
    _ready(services)
    answer = services.answers.define(term)
    click.echo(json.dumps(answer.to_json_dict(), ensure_ascii=False) if as_json
               else render(answer, quote_width()))


@click.command("terms")
@click.option("--json", "as_json", is_flag=True, help="Print the glossary as a JSON list.")
@click.pass_obj
def terms_cmd(services, as_json: bool) -> None:
    """List the glossary: the jargon `pbrbot define` knows, with aliases."""
    terms = services.glossary.terms()
    if as_json:
        click.echo(json.dumps([t.as_dict() for t in terms], ensure_ascii=False))
        return
    for t in terms:
        aka = f" (also: {', '.join(t.aliases)})" if t.aliases else ""
        click.echo(f"{t.name}{aka}\n    {t.gloss or t.expansion}")


@click.command("eval")
@click.argument("questions", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the numbers as JSON.")
@click.option("--cv", is_flag=True,
              help="Cross-validate: fit the ranker, refusal and fusion on the other folds' questions "
                   "(QUESTIONS and the checkout's labelled questions) and score each question out of fold.")
@click.option("--folds", type=click.IntRange(2, 20), default=5, show_default=True, help="Folds for --cv.")
@click.option("--repeats", type=click.IntRange(1, 20), default=5, show_default=True,
              help="For --cv: the figures are the mean over this many splits into folds.")
@click.pass_obj
def eval_cmd(services, questions: Path | None, as_json: bool, cv: bool, folds: int, repeats: int) -> None:
    """Score pbrbot and the keyword-only and dense-only baselines on QUESTIONS.jsonl
    (default: the packaged seed questions)."""
    from pbrbot.evaluate import evaluate, load_questions, table
    from pbrbot.sources.sample import seed_questions_path

    items = load_questions(questions or seed_questions_path())
    _ready(services)
    if cv:
        from pbrbot.cv_report import cv_report, load_items, report_table
        from pbrbot.fit import default_question_files

        train = load_items([f for f in default_question_files() if f.exists()])
        data = cv_report(services.answerer, services.settings.data_dir, items, train, folds, repeats=repeats)
        click.echo(json.dumps(data) if as_json else report_table(data))
        return
    with click.progressbar(length=len(items) * 3, label="evaluating", file=sys.stderr) as bar:
        def progress(done: int, total: int) -> None:
            bar.update(done - bar.pos)

        scores = evaluate(services.answerer, items, progress=progress)
    if as_json:
        click.echo(json.dumps({"questions": len(items), "systems": {s.system: s.as_dict() for s in scores}}))
    else:
        click.echo(table(scores))


COMMANDS = [ask_cmd, latest_cmd, define_cmd, terms_cmd, eval_cmd]
