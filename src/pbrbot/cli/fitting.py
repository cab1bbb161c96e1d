"""CLI: fit (the ranker, refusal threshold and fusion weighting, from labelled questions)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from pbrbot.errors import PbrbotError


def _progress(label: str, total: int):
    bar = click.progressbar(length=total, label=label, file=sys.stderr)
    bar.__enter__()

    def step(done: int, _total: int) -> None:
        bar.update(done - bar.pos)
        if done == _total:
            bar.__exit__(None, None, None)

    return step


@click.command("fit")
@click.option("--archive", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Ingest and index this archive into the data dir first (default: the data dir's archive; "
                   "for the shipped weights: tests/data/dev/archive.jsonl).")
@click.option("--questions", "question_files", multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Labelled question files (default: seed, calibration, training and dev questions).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where to write ranker.json and fusion.json (default: the package's data folder).")
@click.option("--folds", type=click.IntRange(2, 20), default=5, show_default=True)
@click.option("--repeats", type=click.IntRange(1, 20), default=5, show_default=True,
              help="The figures are the mean over this many splits into folds.")
@click.option("--json", "as_json", is_flag=True, help="Print the cross-validated figures as JSON.")
@click.pass_obj
def fit_cmd(services, archive: Path | None, question_files: tuple[Path, ...], out: Path | None, folds: int,
            repeats: int, as_json: bool) -> None:
    """Fit the sentence ranker, the "not in the archive" threshold and the hybrid search's weighting on
    labelled questions; print their cross-validated figures and write the weights."""
    import pbrbot
    from pbrbot import fit
    from pbrbot.cv_report import cv_report, load_items, report_table

    if archive is not None:
        from pbrbot.ingest import ingest

        report = ingest(services.store, services.settings, [str(archive)])
        click.echo(report.summary(), err=True)
        services.run_index()
    if not services.store.count_passages():
        raise PbrbotError("the data dir has no indexed archive: pass --archive tests/data/dev/archive.jsonl")
    files = list(question_files) or [f for f in fit.default_question_files() if f.exists()]
    missing = [str(f) for f in files if not Path(f).exists()]
    if missing:
        raise PbrbotError(f"question file not found: {', '.join(missing)} (pass --questions)")
    items = load_items(files)
    data_dir = services.settings.data_dir
    data = cv_report(services.answerer, data_dir, items, [], folds,
                     _progress("cross-validating", folds * repeats), baselines=False, repeats=repeats)
    model = fit.fit_all(fit.Runs(services.answerer, data_dir, items), list(range(len(items))))
    written = fit.write(model, out or Path(pbrbot.__file__).parent / "data")
    if as_json:
        click.echo(json.dumps(data))
    else:
        click.echo(report_table(data))
        click.echo(f"found >= {model.found:.3f}, related >= {model.related:.3f}, fusion {model.fusion}")
        click.echo("wrote " + ", ".join(str(p) for p in written))


COMMANDS = [fit_cmd]
