"""Metrics of several models side by side: one row per metric, one column per model (Markdown)."""

from __future__ import annotations

import math


def metric_rows(results: dict[str, dict[str, float]]) -> list[str]:
    """Every metric any model has, in first-seen order (sets, then their bits per byte, then probes)."""
    seen: dict[str, None] = {}
    for metrics in results.values():
        for key in metrics:
            seen.setdefault(key, None)
    return list(seen)


def format_value(value: float | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return f"{value:.4f}"


def markdown_table(results: dict[str, dict[str, float]]) -> str:
    """A Markdown table of ``{model: {metric: value}}``."""
    models = list(results)
    lines = ["| metric | " + " | ".join(models) + " |", "|---|" + "---:|" * len(models)]
    for key in metric_rows(results):
        lines.append(f"| {key} | " + " | ".join(format_value(results[m].get(key)) for m in models) + " |")
    return "\n".join(lines) + "\n"
