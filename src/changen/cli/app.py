"""The ``changen`` entry point: command groups and one-line errors for user mistakes."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from changen import __version__
from changen.cli import data, detect, eval, train
from changen.cli.demo import demo
from changen.cli.gallery import gallery
from changen.cli.generate import generate
from changen.cli.simulate import simulate
from changen.errors import ChangenError

app = typer.Typer(
    name="changen",
    help="Synthetic change-detection data from single-temporal labels (Changen / GPCM).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(data.app, name="data")
app.add_typer(train.app, name="train")
app.add_typer(eval.app, name="eval")
app.add_typer(detect.app, name="detect")
app.command("simulate")(simulate)
app.command("generate")(generate)
app.command("gallery")(gallery)
app.command("demo")(demo)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"changen {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """changen: simulate change events, synthesise post-event images, build change datasets."""


def main() -> None:
    """Console entry point: user mistakes print one line on stderr and exit with status 2."""
    try:
        app()
    except ChangenError as e:
        Console(stderr=True).print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
