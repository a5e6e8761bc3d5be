"""Markdown tables of benchmark results (the JSON holds every raw number)."""
from __future__ import annotations

MAIN_COLUMNS = ("cell", "shape T×B×I×H×L", "threads", "impl", "reps", "train ms (IQR)", "train ×torch",
                "infer ms (IQR)", "infer ×torch", "saved MiB", "saved B/unit", "saved ×SJ")
SCALING_COLUMNS = ("cell", "impl", "T", "reps", "train ms (IQR)", "µs/step (time/T)", "saved MiB",
                   "saved B/step (bytes/T)", "note")


def fmt_ms(value: float | None) -> str:
    """Milliseconds with 3 significant digits or so; ``—`` when missing."""
    if value is None:
        return "—"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def fmt_summary(summary: dict | None) -> str:
    """``median (IQR)`` of a timing summary in ms."""
    if not summary:
        return "—"
    return f"{fmt_ms(summary['median'])} ({fmt_ms(summary['iqr'])})"


def fmt_ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}×"


def fmt_number(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def fmt_mib(nbytes: int | None) -> str:
    return "—" if nbytes is None else f"{nbytes / 2**20:.2f}"


def _table(columns: tuple[str, ...], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _short(text: str | None, limit: int = 60) -> str:
    text = (text or "").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def main_table(results: list[dict]) -> str:
    """One row per (cell, shape, threads, implementation)."""
    rows = []
    for r in results:
        train = fmt_summary(r["train_ms"]) if r["status"] == "ok" else f"failed: {_short(r['error'])}"
        rows.append([r["cell"], r["shape_label"], str(r["threads"]), r["impl"], str(r["repeats"]), train,
                     fmt_ratio(r["train_ratio"]), fmt_summary(r["infer_ms"]), fmt_ratio(r["infer_ratio"]),
                     fmt_mib(r["saved_bytes"]), fmt_number(r["saved_bytes_per_unit"]),
                     fmt_ratio(r["memory_ratio_vs_spikingjelly"])])
    return _table(MAIN_COLUMNS, rows)


def scaling_table(results: list[dict]) -> str:
    """One row per (cell, implementation, T)."""
    rows = []
    order = {name: i for i, name in enumerate(dict.fromkeys(r["impl"] for r in results))}  # torch first
    cells = {name: i for i, name in enumerate(dict.fromkeys(r["cell"] for r in results))}
    for r in sorted(results, key=lambda r: (cells[r["cell"]], order[r["impl"]], r["T"])):
        us_per_step = None if r["ms_per_step"] is None else r["ms_per_step"] * 1e3
        rows.append([r["cell"], r["impl"], str(r["T"]), str(r["repeats"]), fmt_summary(r["train_ms"]),
                     fmt_number(us_per_step, 1), fmt_mib(r["saved_bytes"]), fmt_number(r["bytes_per_step"], 0),
                     _short(r.get("reason"), 80)])
    return _table(SCALING_COLUMNS, rows)


def skipped_lines(skipped: list[dict]) -> list[str]:
    return [f"- `{s['impl']}` ({s['cell']}): not benchmarked, {s['reason']}" for s in skipped]


def observations(results: list[dict]) -> list[str]:
    """Generated facts: where a spikingrnn backend is slower than torch, and reduced repeat counts."""
    lines = []
    names = sorted({r["impl"] for r in results if r["impl"].startswith("spikingrnn-")})
    for name in names:
        for kind in ("train", "infer"):
            slower = [r for r in results if r["impl"] == name and (r[f"{kind}_ratio"] or 0) > 1]
            ok = [r for r in results if r["impl"] == name and r[f"{kind}_ratio"] is not None]
            if not ok:
                continue
            if slower:
                where = ", ".join(f"{r['cell']} {r['shape_label']} @{r['threads']}t ({r[f'{kind}_ratio']:.2f}×)"
                                  for r in slower)
                lines.append(f"- `{name}` {kind} is slower than torch on {len(slower)}/{len(ok)} rows: {where}.")
            else:
                lines.append(f"- `{name}` {kind} is at least as fast as torch on all {len(ok)} rows.")
    most = max((r["repeats"] for r in results), default=0)
    reduced = [r for r in results if r["status"] == "ok" and 0 < r["repeats"] < most]
    if reduced:
        where = ", ".join(f"{r['impl']} {r['cell']} {r['shape_label']} @{r['threads']}t ({r['repeats']})"
                          for r in reduced)
        lines.append(f"- Fewer timed repeats (time budget per implementation) for: {where}.")
    noisy = [r for r in results if r["status"] == "ok" and any(
        r[k] and r[k]["median"] > 0 and r[k]["iqr"] > 0.25 * r[k]["median"] for k in ("train_ms", "infer_ms"))]
    if noisy:
        lines.append(f"- Noisy rows (IQR above 25 % of the median in train or infer): {len(noisy)}/{len(results)}; "
                     "their ratios are less reliable.")
    failed = [r for r in results if r["status"] == "failed"]
    for r in failed:
        lines.append(f"- `{r['impl']}` failed on {r['cell']} {r['shape_label']} @{r['threads']}t: {_short(r['error'], 200)}")
    return lines
