"""``changen bench``: experiments that produce the papers' tables.

``changen bench transfer CONFIG.yaml --out DIR`` runs a transfer experiment
(:mod:`changen.protocol`): synthetic sets, pre-training, zero-shot and fine-tuning arms, and
the table and plot. Rerunning the same command resumes it; finished arms are not redone.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from changen.cli.progress import rich_sink

app = typer.Typer(help="Run the papers' experiments (transfer tables).", no_args_is_help=True)


@app.command()
def transfer(
    config: Path = typer.Argument(
        ..., help="Experiment config (YAML or JSON; see docs/transfer.md)."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Work folder (new, or one to resume)."),
    progress: bool = typer.Option(True, help="Show progress bars."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
) -> None:
    """Generate, pre-train, evaluate zero-shot and fine-tune every arm; write the table."""
    from changen.data.lock import output_lock
    from changen.protocol import load_config, run_protocol

    experiment = load_config(config)
    out.mkdir(parents=True, exist_ok=True)
    with output_lock(out), rich_sink(progress and not as_json) as sink:
        report = run_protocol(experiment, out, sink, log=None if as_json else typer.echo)
    if as_json:
        typer.echo(json.dumps(report["mean_std"], indent=2))
        return
    typer.echo((out / "results.md").read_text(), nl=False)
    typer.echo(f"wrote {out / 'results.json'}, {out / 'results.md'}, {out / 'f1_vs_fraction.png'}")
