"""How commands talk: data to stdout in the asked format, everything else to stderr."""

from __future__ import annotations

import csv
import enum
import json
import sys
from typing import Any

from rich.console import Console


class OutputFormat(str, enum.Enum):
    table = "table"
    json = "json"
    csv = "csv"


class TableJson(str, enum.Enum):
    """`--format` of the commands that print a table for people or JSON for machines."""

    table = "table"
    json = "json"


class _StdoutConsole(Console):
    def on_broken_pipe(self) -> None:
        # rich exits with 1 here; the reader leaving early (`| head`) is not a failure,
        # and the CLI turns BrokenPipeError into exit 0 for every format alike
        self.quiet = True
        raise BrokenPipeError()


def stdout_console() -> Console:
    # A pipe gets plain text wide enough that tables do not wrap.
    return _StdoutConsole(soft_wrap=False, width=None if sys.stdout.isatty() else 200)


def stderr_console() -> Console:
    # soft_wrap: one message is one line, whatever the width (`grep` on logs works)
    return Console(stderr=True, soft_wrap=True)


def progress_bar(*, status: bool = False, transient: bool = True, console: Console | None = None):
    """A rich progress bar on stderr: description, bar, done/total, [status], times.

    Pass the console you print other lines with, so they interleave cleanly. Writes to
    stdout pass through the bar only when stdout is the same terminal (otherwise rich
    would send piped data to the terminal); a non-terminal stderr gets no bar.
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = console or stderr_console()
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn()]
    if status:
        columns.append(TextColumn("{task.fields[status]}"))
    columns += [TimeElapsedColumn(), TimeRemainingColumn()]
    return Progress(
        *columns,
        console=console,
        transient=transient,
        redirect_stdout=sys.stdout.isatty(),
        redirect_stderr=False,
        disable=not console.is_terminal,
    )


def note(message: str) -> None:
    """A log line for the user, on stderr."""
    stderr_console().print(f"[dim]note:[/dim] {message}", highlight=False)


def write_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2)
    sys.stdout.write("\n")


def write_csv(header: list[str], rows: list[list[Any]]) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
