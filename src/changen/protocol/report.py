"""The table and the curves of a transfer experiment.

``results.json`` holds every seed's scores and their mean ± std (sample std over seeds; 0
for one seed), ``results.md`` the Markdown table (F1 zero-shot and at each fine-tuning
fraction, one row per detector and arm, beside the trivial "everything changed" detector),
``f1_vs_fraction.png`` F1 against the fine-tuning fraction per arm (ChangeAnywhere's Fig. 2).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from changen.data.atomic import write_bytes_atomic, write_text_atomic
from changen.detectors.evaluate import SCORE_NAMES
from changen.protocol.config import ProtocolConfig

Results = dict[str, dict[str, dict[int, dict[str, dict[str, float]]]]]
"""detector → arm → seed → phase (``zero_shot``, ``finetune-<f>``) → score → value."""


def mean_std(values: list[float]) -> dict[str, float]:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": round(statistics.mean(values), 4), "std": round(std, 4)}


def summarise(results: Results) -> dict[str, dict[str, dict[str, dict[str, dict[str, float]]]]]:
    """detector → arm → phase → score → {mean, std} over seeds."""
    summary: dict[str, Any] = {}
    for det, arms in results.items():
        for arm, seeds in arms.items():
            phases = next(iter(seeds.values()))
            summary.setdefault(det, {})[arm] = {
                phase: {
                    name: mean_std([seeds[s][phase][name] for s in seeds]) for name in SCORE_NAMES
                }
                for phase in phases
            }
    return summary


def _cell(entry: dict[str, dict[str, float]] | None) -> str:
    if entry is None:
        return "–"
    f1 = entry["f1"]
    return f"{f1['mean']:.3f} ± {f1['std']:.3f}"


def table(config: ProtocolConfig, summary: dict[str, Any], trivial: dict[str, float]) -> str:
    """Markdown: F1 zero-shot and after fine-tuning on each fraction of the real train split."""
    phases = [f"finetune-{f:g}" for f in config.finetune.fractions]
    head = ["detector", "arm", "zero-shot F1", *(f"F1 @ {float(p[9:]) * 100:g} %" for p in phases)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for det, arms in summary.items():
        for arm, result in arms.items():
            cells = [
                det,
                arm,
                _cell(result.get("zero_shot")),
                *(_cell(result.get(p)) for p in phases),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    trivial_row = ["—", "all changed (trivial)", f"{trivial['f1']:.3f}", *("–" for _ in phases)]
    lines.append("| " + " | ".join(trivial_row) + " |")
    return "\n".join(lines) + "\n"


def plot(config: ProtocolConfig, summary: dict[str, Any]) -> bytes:
    """PNG bytes: F1 (mean ± std) against the fine-tuning fraction, one panel per detector."""
    import io

    from matplotlib.figure import Figure

    fractions = list(config.finetune.fractions)
    fig = Figure(figsize=(5.5 * len(summary), 4), dpi=110)
    for k, (det, arms) in enumerate(summary.items()):
        ax = fig.add_subplot(1, len(summary), k + 1)
        for arm, result in arms.items():
            stats = [result[f"finetune-{f:g}"]["f1"] for f in fractions]
            means = [s["mean"] for s in stats]
            ax.errorbar(
                [f * 100 for f in fractions],
                means,
                yerr=[s["std"] for s in stats],
                marker="o",
                capsize=3,
                label=arm,
            )
        ax.set_xscale("log")
        ax.set_xlabel("fine-tuning data (% of the real train split)")
        ax.set_ylabel("F1 on the real test split")
        ax.set_title(det)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def write_report(
    config: ProtocolConfig, results: Results, out: Path, trivial: dict[str, float]
) -> dict[str, Any]:
    """Write ``results.json``, ``results.md`` and the plot; return the JSON object."""
    summary = summarise(results)
    report = {
        "config": config.to_dict(),
        "per_seed": results,
        "mean_std": summary,
        "all_changed_baseline": trivial,
    }
    write_text_atomic(out / "results.json", json.dumps(report, indent=2) + "\n")
    write_text_atomic(out / "results.md", table(config, summary, trivial))
    write_bytes_atomic(out / "f1_vs_fraction.png", plot(config, summary))
    return report
