"""The `pbrbot bench` report as Markdown tables (BENCHMARKS.md is made of this)."""

from __future__ import annotations


def format_report(report: dict) -> str:
    """The report as Markdown tables (BENCHMARKS.md is made of this)."""
    m = report["machine"]
    lines = [(f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gb']} GB RAM; Python {m['python']}, "
              f"torch {m.get('torch', '?')}, onnxruntime {m['onnxruntime']}, faiss {m['faiss']}; "
              f"load average {m['load_avg_1m']} at the start, {m.get('load_avg_1m_end', '?')} at the end"),
             ""]
    ix = report["indexer"]
    lines += [(f"Indexer ({ix['backend']}, {ix['passages']} passages): {ix['indexer_per_s']} passages/s "
               f"through run_index's passage phase vs {ix['raw_per_s']} raw encode = ratio {ix['ratio']}; "
               f"then its sentence phase: {ix.get('sentences', '?')} sentence texts in "
               f"{ix.get('sentence_s', '?')} s = {ix.get('sentences_per_s', '?')}/s"), "",
              "| backend | passages/s | speed-up | query embed ms | cosine mean | cosine min |",
              "|---|---|---|---|---|---|"]
    for name, b in report["embedding"]["backends"].items():
        lines.append(f"| {name} | {b['passages_per_s']} | {b['speedup']}x | {b['query_ms']} | "
                     f"{b['cos_mean']} | {b['cos_min']} |")
    lines += ["", ("| passages | index | faiss MB | db MB | backend | ask p50 ms | ask p95 ms | embed | "
                   "vector | keyword (share used) | fusion | quotes (of which embedding) | peak RSS MB |"),
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for e in report["sizes"]:
        for backend, a in e["ask"].items():
            s = a["split_p50_ms"]
            rss = e["rss"].get(backend, {})
            rss_text = f"{rss['rss_mb']}" + (" (torch loaded)" if rss.get("torch_imported") else "") \
                if "rss_mb" in rss else rss.get("error", "-")
            lines.append(f"| {e['passages']:,} | {e['index_type']} | {e['faiss_mb']} | {e['db_mb']} | "
                         f"{backend} | {a['p50_ms']} | {a['p95_ms']} | {s['embed']} | {s['vector']} | "
                         f"{s['keyword']} "
                         f"({a.get('keyword_share', '?')}) | "
                         f"{s['fusion']} | {s['quotes']} ({s['quotes_embed']}) | {rss_text} |")
    lines += ["", ("| passages | FAISS ms | semantic_search ms | Python loop over SQLite ms | ss / FAISS | "
                   "loop / FAISS |"), "|---|---|---|---|---|---|"]
    for e in report["sizes"]:
        b = e["baselines"]
        star = f" (extrapolated from {b['python_loop_rows']:,} rows)" if b["python_loop_extrapolated"] else ""
        ss, ss_x = (b["semantic_search_ms"], f"{b['semantic_search_vs_faiss']}x") if b["semantic_search_ms"] \
            else ("n/a (no torch)", "n/a")
        lines.append(f"| {e['passages']:,} | {b['faiss_ms']} | {ss} | {b['python_loop_ms']}"
                     f"{star} | {ss_x} | {b['python_loop_vs_faiss']}x |")
    c = report.get("concurrency")
    if c:
        lines += ["", (f"Concurrency ({c['archive']}): a short question takes {c['short_alone_ms']} ms alone "
                       f"and {c['short_during_long_ms']} ms while a {c['long_chars']:,}-character one "
                       f"({c['long_ms']} ms) is answered in another thread: {c['ratio']}x (medians of "
                       f"{c['rounds']})")]
    return "\n".join(lines)

