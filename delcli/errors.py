"""Exception families of `del`.

Every error a user can cause is one of these. The CLI catches `DelError` once,
prints its message as a single line and exits with code 2 (`--debug` shows the
traceback). Messages name the offending file, key or value and, where one
exists, the allowed alternatives.
"""

import contextlib
import signal
import threading
from collections.abc import Iterator


class DelError(Exception):
    """Base class: a problem with the user's input, not a bug in `del`."""


class DataError(DelError):
    """Malformed or inconsistent data: annotations, predictions, features."""


class ConfigError(DelError):
    """An invalid option, configuration key or value."""


class WeightsError(DelError):
    """Missing, corrupt or mismatching model weights."""


class ExportError(DelError):
    """An export that fails, or whose file does not reproduce the network."""


class Terminated(BaseException):
    """SIGTERM arrived (Slurm preemption, `timeout`, `kill`). A BaseException, like
    KeyboardInterrupt, so that it unwinds through every cleanup (temporary files are
    removed) and no `except Exception` swallows it; the CLI exits with 143."""

    exit_code = 143


@contextlib.contextmanager
def terminated_on_sigterm() -> Iterator[None]:
    """Within the block, SIGTERM raises `Terminated` in the main thread. Outside the main
    thread, or when a program embedding `del` has its own SIGTERM handler, nothing
    changes."""

    def terminate(signum, frame):
        raise Terminated()

    main = threading.current_thread() is threading.main_thread()
    if not main or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return
    signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
