"""The shell blocks of README.md, docs/ and benchmarks/README.md parse as written.

Every ``changen`` command of a ```bash block goes through the CLI's own parser (the command
exists, its options exist, required arguments are there, values convert); every
``benchmarks/*.py`` invocation through its script's argparse parser, stopped right after
parsing. What is checked is the command line, not a run: a path that does not exist on this
machine (data the reader brings) is accepted, and usage synopses (``[--count 1:5]``,
``--rotate any|90|none``) are checked without their optional groups. A file also must not send
two different commands to one ``--out`` folder (a later one would refuse it or overwrite it),
unless the later one continues it (``--resume``); placeholders (``--out DIR``) are exempt.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
from pathlib import Path

import pytest
import typer

from changen.cli.app import app
from fixtures_scripts import load_script

ROOT = Path(__file__).resolve().parents[1]
FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "benchmarks/README.md"]
BLOCK = re.compile(r"^```(?:bash|sh|shell)\n(.*?)^```", re.S | re.M)
OPTIONAL = re.compile(r"\s\[[^\]]*\]")
CONTINUES = ("--resume",)


def commands(text: str) -> list[list[str]]:
    """The simple commands of a markdown text's shell blocks, as argument lists (comments,
    line continuations, ``&&`` chains and leading ``VAR=value`` assignments handled)."""
    out = []
    for block in BLOCK.findall(text):
        for line in block.replace("\\\n", " ").splitlines():
            line = OPTIONAL.sub("", line)
            words = shlex.split(line, comments=True)
            for part in _split(words, ("&&", "||", ";", "|")):
                while part and re.fullmatch(r"[A-Z_]+=\S*", part[0]):
                    part = part[1:]
                if part:
                    out.append(part)
    return out


def _split(words: list[str], separators: tuple[str, ...]) -> list[list[str]]:
    parts: list[list[str]] = [[]]
    for word in words:
        if word in separators:
            parts.append([])
        else:
            parts[-1].append(word)
    return parts


def documented() -> list[tuple[str, list[str]]]:
    return [
        (f"{path.relative_to(ROOT)}: {shlex.join(cmd)}", cmd)
        for path in FILES
        if path.is_file()
        for cmd in commands(path.read_text(encoding="utf-8"))
    ]


def _rest(ctx: typer.Context) -> list[str]:
    """The words a group left for its subcommand (click moved them to a private field)."""
    protected = getattr(ctx, "_protected_args", None) or getattr(ctx, "protected_args", [])
    return [*protected, *ctx.args]


def _changen(args: list[str]) -> None:
    """Parse ``changen ARGS`` down to its leaf command, as the CLI would before running it."""
    command = typer.main.get_command(app)
    ctx = command.make_context("changen", [a.split("|")[0] for a in args], resilient_parsing=False)
    rest = _rest(ctx)
    while hasattr(command, "resolve_command") and rest:
        name, command, rest = command.resolve_command(ctx, rest)
        assert command is not None, f"no command {name!r}"
        ctx = command.make_context(name, rest, parent=ctx)
        rest = _rest(ctx) if hasattr(command, "resolve_command") else []


class _Parsed(Exception):
    """Raised right after a benchmark script's arguments parsed."""


def _script(path: Path, args: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Run ``path``'s ``main()`` with ``args`` up to the end of its argument parsing."""
    module = load_script(path)
    parse = argparse.ArgumentParser.parse_args

    def parse_then_stop(self: argparse.ArgumentParser, *a: object, **k: object) -> None:
        parse(self, *a, **k)  # type: ignore[arg-type]
        raise _Parsed

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    monkeypatch.setattr(sys, "argv", [str(path), *args])
    with pytest.raises(_Parsed):
        module.main()


COMMANDS = documented()


@pytest.mark.parametrize("cmd", [c for _, c in COMMANDS], ids=[i for i, _ in COMMANDS])
def test_documented_command_parses(cmd: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    program, args = cmd[0], cmd[1:]
    if program == "changen":
        try:
            _changen(args)
        except typer.BadParameter as e:  # a path the user brings, absent here
            if "does not exist" not in str(e):
                raise
        return
    if Path(program).name in ("python", "python3") and args and args[0].startswith("benchmarks/"):
        _script(ROOT / args[0], args[1:], monkeypatch)


def _out(cmd: list[str]) -> str | None:
    for flag in ("--out", "-o"):
        if flag in cmd[:-1]:
            return cmd[cmd.index(flag) + 1]
    return None


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_no_two_commands_write_one_folder(path: Path) -> None:
    writers: dict[str, list[str]] = {}
    for cmd in commands(path.read_text(encoding="utf-8")):
        out = _out(cmd)
        if out is None or out.isupper() or any(flag in cmd for flag in CONTINUES):
            continue
        first = writers.setdefault(out, cmd)
        assert first == cmd, (
            f"{path.name}: `{shlex.join(first)}` and `{shlex.join(cmd)}` both write {out}"
        )
