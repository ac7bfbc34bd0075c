"""Exception families of `del`.

Every error a user can cause is one of these. The CLI catches `DelError` once,
prints its message as a single line and exits with code 2 (`--debug` shows the
traceback). Messages name the offending file, key or value and, where one
exists, the allowed alternatives.
"""


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
