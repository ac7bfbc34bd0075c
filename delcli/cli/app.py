"""The `del` command: one Typer app, one error path.

Every user-caused error is a `DelError` (or a click usage error) and becomes
one line on stderr with exit code 2; `--debug` shows the traceback instead.
Subcommands live in sibling modules and import heavy libraries lazily.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys

import typer

from delcli import __version__
from delcli.errors import DelError, Terminated, terminated_on_sigterm

app = typer.Typer(
    name="del",
    help="Dense audio-visual event localization: every event of a video, "
    "with start, end, class and score.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"del {__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version."
    ),
    debug: bool = typer.Option(
        False, "--debug", help="Show full tracebacks instead of one-line errors."
    ),
) -> None:
    """Dense audio-visual event localization (DEL)."""


def _register_commands() -> None:
    from delcli.cli import (
        data_cmd,
        eval_cmd,
        export_cmd,
        extract_cmd,
        predict_cmd,
        train_cmd,
        zoo_cmd,
    )

    data_cmd.register(app)
    extract_cmd.register(app)
    predict_cmd.register(app)
    train_cmd.register(app)
    eval_cmd.register(app)
    zoo_cmd.register(app)
    export_cmd.register(app)


_register_commands()


def _error(message: str) -> None:
    typer.echo(f"del: error: {message}", err=True)


def _usage_message(error: Exception) -> str:
    """click's message without the validator's wording ("Value error, …")."""
    return re.sub(r"\bValue error, ", "", error.format_message())


def _print_traceback() -> None:
    import traceback

    traceback.print_exc()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `del` console script; returns the exit code.

    SIGTERM (Slurm preemption, `timeout`) and Ctrl-C unwind like an exception, so every
    temporary file is removed on the way out; the exit codes are 143 and 130. `--debug`
    prints the traceback and keeps the exit code."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    command = typer.main.get_command(app)
    with terminated_on_sigterm():
        try:
            result = command.main(args=args, prog_name="del", standalone_mode=False)
        except typer.TyperException as error:  # usage errors: unknown option, bad value, …
            if type(error).__name__ == "NoArgsIsHelpError":  # `del` alone: help, printed
                return 2
            if debug:
                _print_traceback()
            context = getattr(error, "ctx", None)
            where = context.command_path if context else "del"
            _error(f"{_usage_message(error)} (see '{where} --help')")
            return 2
        except DelError as error:
            if debug:
                _print_traceback()
            _error(str(error))
            return 2
        except BrokenPipeError:  # `del eval … | head`: the reader left; not an error
            _silence_stdout()
            return 0
        except SystemExit:
            # click turns a closed stdout pipe into exit 1 after wrapping stdout; the reader
            # leaving early is not a failure
            if type(sys.stdout).__name__ == "PacifyFlushWrapper":
                return 0
            raise
        except Terminated:
            _error("terminated")
            return Terminated.exit_code
        except (KeyboardInterrupt, typer.Abort):
            _error("interrupted")
            return 130
        except OSError as error:  # the system refused: disk full, permission denied, …
            if debug:
                _print_traceback()
            where = f" ({error.filename})" if error.filename else ""
            _error(f"{error.strerror or error}{where}")
            return 1
        except Exception as error:  # a bug in del: say so, in one line
            if debug:
                _print_traceback()
            _error(f"internal error: {type(error).__name__}: {error} (rerun with --debug)")
            return 1
    return result if isinstance(result, int) else 0


def _silence_stdout() -> None:
    """Send what is still buffered for stdout to /dev/null, so the flush at exit is quiet."""
    with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives until exit


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
