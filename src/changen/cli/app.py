"""The ``changen`` entry point: command groups and one-line errors for user mistakes."""

from __future__ import annotations

import sys
from typing import NoReturn, cast

import typer
from rich.console import Console
from rich.markup import escape

from changen import __version__
from changen.cli import bench, data, detect, eval, train
from changen.cli.demo import demo
from changen.cli.export import export
from changen.cli.gallery import gallery
from changen.cli.generate import generate
from changen.cli.simulate import simulate
from changen.errors import USAGE_EXIT, ChangenError

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
app.add_typer(bench.app, name="bench")
app.command("simulate")(simulate)
app.command("generate")(generate)
app.command("export")(export)
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


# click's UsageError as the installed typer raises it (typer >= 0.22 vendors click).
_USAGE_ERROR = cast(
    type[Exception], next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")
)


def _fail(message: str, status: int = USAGE_EXIT) -> NoReturn:
    """Print ``error: MESSAGE`` (never read as rich markup) on stderr and exit with
    ``status``."""
    Console(stderr=True).print(
        f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True
    )
    sys.exit(status)


def main() -> None:
    """Console entry point: user mistakes print one line on stderr and exit with status 2
    (:data:`~changen.errors.USAGE_EXIT`: an option the parser rejects, a wrong or inconsistent
    option) or 3 (:data:`~changen.errors.DATA_EXIT`: input files malformed or unreadable, an
    output that cannot be written); see :mod:`changen.errors`."""
    try:
        code = app(standalone_mode=False)
    except ChangenError as e:
        _fail(str(e), e.exit_code)
    except _USAGE_ERROR as e:
        if type(e).__name__ == "NoArgsIsHelpError":  # typer has printed the help already
            sys.exit(USAGE_EXIT)
        ctx = getattr(e, "ctx", None)
        command = "changen" if ctx is None else ctx.command_path
        message = e.format_message()  # type: ignore[attr-defined]  # click's exception API
        _fail(f"{message.rstrip('.')}; see `{command} --help`")
    if isinstance(code, int) and code:  # typer.Exit(code) is returned, not raised
        sys.exit(code)


if __name__ == "__main__":
    main()
