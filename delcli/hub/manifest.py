"""Where a zoo model's weights live: the `weights:` block of a recipe.

```yaml
weights:
  status: published          # published | packaged | unpublished
  repo: del-models/unav100   # a Hugging Face Hub model repo
  file: model.safetensors    # safetensors only: nothing pickled is ever loaded
  revision: 3f5c…(40 hex)    # the commit, pinned; a branch or tag is refused
  sha256: 9b1e…(64 hex)      # of the file, checked before every use
  size: 27182818             # bytes (optional)
  licence: MIT
  extractors:                # weights of the feature extractors (`del predict`)
    vggish: {repo: …, file: …, revision: …, sha256: …}
    i3d:                     # one file per stream, as ExtractorSpec.weights
      rgb: {repo: …, file: …, revision: …, sha256: …}
      flow: {repo: …, file: …, revision: …, sha256: …}
```

- `published`: `repo`, `file`, `revision`, `sha256` and `licence` are required;
  the file comes from the Hub cache, else the Hub (`delcli.hub.download`).
- `packaged`: the weights ship inside the package
  (`delcli/resources/NAME/NAME.safetensors`, e.g. `demo`); `sha256` is
  required, `repo`/`file`/`revision` may name where they are also published.
- `unpublished`: nothing to fetch yet; `del` says how to train the model.

An extractor entry is `null` (its weights are not published: pass
`--weights NAME=FILE`) or complete (`repo`, `file`, `revision`, `sha256`).
`scripts/publish.py` prints a filled-in block to paste.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from delcli.errors import ConfigError
from delcli.settings import from_dict

Status = Literal["published", "unpublished", "packaged"]
COMMIT = re.compile(r"[0-9a-f]{40}")
SHA256 = re.compile(r"[0-9a-f]{64}")
REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")
FILE_FIELDS = ("repo", "file", "revision", "sha256")


@dataclass
class HubFile:
    """One file in a Hub model repo, pinned to a commit and checked by sha256."""

    repo: str | None = None
    file: str | None = None
    revision: str | None = None
    sha256: str | None = None
    size: int | None = None
    licence: str | None = None

    def spec(self) -> str:
        """The `hf://ORG/NAME/FILE@REVISION` form the extractors' loader reads."""
        return f"hf://{self.repo}/{self.file}@{self.revision}"


@dataclass
class WeightsManifest(HubFile):
    """A zoo model's weights: the Hub coordinates plus publication status and the
    extractors' weights (name → `HubFile`, {stream → `HubFile`} or None)."""

    status: Status = "unpublished"
    extractors: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_file(self, "weights", required=REQUIRED[self.status])
        self.extractors = {
            name: _extractor_entry(value, f"weights.extractors.{name}")
            for name, value in (self.extractors or {}).items()
        }

    def extractor_files(self) -> dict[str, HubFile]:
        """Every extractor weight file, keyed `name` or `name.stream`."""
        found: dict[str, HubFile] = {}
        for name, entry in self.extractors.items():
            if isinstance(entry, HubFile):
                found[name] = entry
            elif isinstance(entry, dict):
                found.update({f"{name}.{stream}": f for stream, f in entry.items()})
        return found


REQUIRED: dict[str, tuple[str, ...]] = {
    "published": (*FILE_FIELDS, "licence"),
    "packaged": ("sha256",),
    "unpublished": (),
}


def check_file(entry: HubFile, key: str, required: tuple[str, ...]) -> None:
    """`ConfigError` naming `key.field` for a missing or malformed field of `entry`."""
    for name in required:
        if getattr(entry, name) in (None, ""):
            status = f" (status {entry.status})" if isinstance(entry, WeightsManifest) else ""
            raise ConfigError(f"{key}.{name} is missing{status}; needed: {', '.join(required)}")
    if entry.repo is not None and not REPO_ID.fullmatch(entry.repo):
        raise ConfigError(f"{key}.repo={entry.repo!r} is not a Hub repo id (ORG/NAME)")
    if entry.file is not None and not entry.file.endswith(".safetensors"):
        raise ConfigError(
            f"{key}.file={entry.file!r}: only .safetensors files are used (never pickle)"
        )
    if entry.revision is not None:
        entry.revision = entry.revision.lower()
        if not COMMIT.fullmatch(entry.revision):
            raise ConfigError(
                f"{key}.revision={entry.revision!r} is a branch, tag or malformed: pin the "
                "40-hex commit the upload made (scripts/publish.py prints it)"
            )
    if entry.sha256 is not None:
        entry.sha256 = entry.sha256.lower()
        if not SHA256.fullmatch(entry.sha256):
            raise ConfigError(f"{key}.sha256={entry.sha256!r} is not a sha256 (64 hex digits)")
    if entry.size is not None and entry.size < 0:
        raise ConfigError(f"{key}.size={entry.size}: expected a byte count ≥ 0")


def _extractor_entry(value: Any, key: str) -> HubFile | dict[str, HubFile] | None:
    if value is None or isinstance(value, HubFile):
        if value is not None:
            check_file(value, key, FILE_FIELDS)
        return value
    if not isinstance(value, dict):
        raise ConfigError(f"{key}: expected null or a mapping of {', '.join(FILE_FIELDS)}")
    names = {f.name for f in fields(HubFile)}
    if names & set(value):  # one file
        entry = from_dict(HubFile, value, key)
        check_file(entry, key, FILE_FIELDS)
        return entry
    streams = {}
    for stream, item in value.items():  # one file per stream
        if not isinstance(item, dict | HubFile):
            raise ConfigError(
                f"{key}.{stream}: expected a mapping of {', '.join(FILE_FIELDS)} "
                "(or give the extractor's file directly)"
            )
        entry = item if isinstance(item, HubFile) else from_dict(HubFile, item, f"{key}.{stream}")
        check_file(entry, f"{key}.{stream}", FILE_FIELDS)
        streams[stream] = entry
    return streams


def manifest_block(entry: HubFile, status: Status = "published") -> dict[str, Any]:
    """The `weights:` mapping to paste into a zoo recipe (publish.py prints it)."""
    return {
        "status": status,
        "repo": entry.repo,
        "file": entry.file,
        "revision": entry.revision,
        "sha256": entry.sha256,
        "size": entry.size,
        "licence": entry.licence,
    }
