"""Files shipped inside the package (bundled annotations, later the demo model)."""

from importlib.resources import files
from pathlib import Path


def resource_path(relative: str) -> Path:
    """Filesystem path of a packaged resource, e.g. `annotations/unav100/…json.gz`."""
    return Path(str(files(__name__).joinpath(relative)))
