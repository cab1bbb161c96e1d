"""CLI commands: bench, export-onnx."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from pbrbot.errors import PbrbotError


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v.replace("_", "")) for v in text.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated whole numbers, got {text!r}") from None
    if not values or min(values) < 1:
        raise click.BadParameter("sizes must be positive")
    return values


@click.command("bench")
@click.option("--sizes", default="1000,10000,100000,1000000", show_default=True,
              help="Archive sizes in passages, comma-separated.")
@click.option("--backends", "--backend", "backends", default="torch,onnx-int8", show_default=True,
              help="Embedding backends to compare (torch, onnx, onnx-int8); the first one indexes.")
@click.option("--real", default=1000, show_default=True,
              help="Passages embedded with the real model; larger archives get perturbed copies of their "
                   "vectors.")
@click.option("--questions", default=24, show_default=True, help="Questions asked per size and backend.")
@click.option("--py-loop-max", default=20_000, show_default=True,
              help="Rows the pure-Python baseline really scans; extrapolated linearly above.")
@click.option("--rss/--no-rss", default=True,
              help="Measure the peak RSS of a fresh process per size and backend.")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the synthetic archives are built and kept (default: DATA_DIR/bench).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def bench(services, sizes, backends, real, questions, py_loop_max, rss, workdir, as_json):
    """Measure indexing and answering speed at several archive sizes, beside naive baselines.

    The report so far is kept in WORKDIR/report.partial.json after each stage."""
    from pbrbot.bench import BenchOptions, format_report, run_bench

    names = [b.strip() for b in backends.split(",") if b.strip()]
    bad = [b for b in names if b not in ("torch", "onnx", "onnx-int8")]
    if bad or not names:
        raise PbrbotError(f"unknown backend {', '.join(bad) or '(none)'}: use torch, onnx or onnx-int8")
    options = BenchOptions(sizes=_int_list(sizes), backends=names, real=max(1, real), questions=questions,
                           py_loop_max=max(1, py_loop_max), rss=rss, workdir=workdir)
    partial_path = (workdir or services.settings.data_dir / "bench") / "report.partial.json"

    def save_partial(report: dict) -> None:
        partial_path.write_text(json.dumps(report, indent=1), encoding="utf-8")

    started = time.monotonic()
    def echo(line: str) -> None:
        click.echo(f"[{time.monotonic() - started:5.0f} s] {line}", err=True)

    report = run_bench(services.settings, options, partial=save_partial, echo=echo)
    click.echo(json.dumps(report, indent=1) if as_json else format_report(report))


@click.command("export-onnx")
@click.pass_obj
def export_onnx(services):
    """Build the embedding model for onnxruntime (fp32, int8) in PBRBOT_MODEL_CACHE_DIR, as first use does."""
    from pbrbot.embedding_onnx import ensure_exported

    for quantized in (False, True):
        click.echo(ensure_exported(services.settings, quantized,
                                   echo=lambda line: click.echo(line, err=True)))


COMMANDS: list = [bench, export_onnx]
