"""`pbrbot bench`: the benchmark, apart from the engine it measures.

- run.py: the run, one function per stage (embedding, indexer, each archive size, concurrency);
- archive.py: the synthetic archives it measures at 10^3..10^6 passages;
- measure.py: what is measured (timed wrappers, ask latency split, baselines, peak RSS of a fresh process);
- report.py: the report as Markdown tables (BENCHMARKS.md).
"""

from pbrbot.bench.report import format_report
from pbrbot.bench.run import BenchOptions, run_bench

__all__ = ["BenchOptions", "format_report", "run_bench"]
