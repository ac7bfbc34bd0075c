"""Pinned weights from the Hugging Face Hub: cache first, verified before use.

`fetch(entry)` returns the local path of `entry.file` at the pinned commit
`entry.revision` of `entry.repo`:

1. the Hugging Face cache (`HF_HUB_CACHE`, else `HF_HOME`/hub, else the
   library default; read at call time) is asked with `local_files_only`;
2. when the file is not there, downloads are allowed and `HF_HUB_OFFLINE` is
   not set, the endpoint (`HF_ENDPOINT`, read at call time) is first probed
   with one short HEAD request (proxies from the environment honoured) —
   huggingface_hub retries a dead network for 23 s and a silent one for
   minutes, so an unreachable Hub is reported at once — and then the file is
   downloaded into the cache (`HF_TOKEN` and the stored token are honoured);
3. the file's sha256 is checked (streamed) and its safetensors header read
   before anything loads it.

`fetch_repo_file(repo, file, revision)` does the same for a file no manifest
pins (a user's `hf://…` extractor weights, a bare repo id such as
`facebook/dinov2-base`): the checksum it checks is the one the Hub announced
for the file, which names the cached blob.

A checksum mismatch is never used. When the cached blob's content differs
from its own name (its etag, the sha256 the Hub announced) the blob is
corrupt: it is moved to `<cache>/del-quarantine/` and every snapshot link to
it removed, so the next fetch downloads it again. When the blob is intact
(the Hub served exactly that content for the pinned commit) the manifest is
what is wrong; the cache is left alone, shared blobs included, and the error
says so.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from delcli.errors import WeightsError
from delcli.hub.manifest import FILE_FIELDS, HubFile, WeightsManifest

PROBE_TIMEOUT = 3.0  # seconds for the endpoint to answer one HEAD request
QUARANTINE = "del-quarantine"
CHUNK = 1 << 20
TRUE = {"1", "on", "yes", "true"}
SHA256_NAME = re.compile(r"[0-9a-f]{64}")
GIT_SHA1_NAME = re.compile(r"[0-9a-f]{40}")


def offline() -> bool:
    """`HF_HUB_OFFLINE` as set now (huggingface_hub itself reads it at import)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in TRUE


def cache_dir() -> Path:
    """The Hugging Face hub cache the environment names now: `HF_HUB_CACHE`, else
    `HF_HOME`/hub, else the library default."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def endpoint() -> str:
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def describe(entry: HubFile) -> str:
    return f"{entry.repo}/{entry.file}@{(entry.revision or '?')[:12]}"


def cached(entry: HubFile) -> Path | None:
    """The pinned file in the cache, unverified; None when it is not there."""
    from huggingface_hub import try_to_load_from_cache

    if not (entry.repo and entry.file and entry.revision):
        return None
    found = try_to_load_from_cache(
        entry.repo, entry.file, cache_dir=cache_dir(), revision=entry.revision
    )
    return Path(found) if isinstance(found, str) and Path(found).is_file() else None


def fetch(
    entry: HubFile, *, allow_download: bool = True, force: bool = False, name: str | None = None
) -> Path:
    """The verified local file of `entry` (see the module docstring).

    Args:
        entry: a complete entry: repo, file, a 40-hex revision, sha256.
        allow_download: False looks in the cache only.
        force: download again even when cached.
        name: the zoo model, for the `del zoo download NAME` hint in messages.
    """
    missing = [key for key in FILE_FIELDS if not getattr(entry, key)]
    if missing:
        raise WeightsError(f"{describe(entry)}: the manifest lacks {', '.join(missing)}")
    path = None if force else _from_cache(entry)
    if path is None:
        path = _download(entry, allow_download, force, name)
    verify(path, entry)
    return path


def fetch_repo_file(
    repo: str, file: str, revision: str | None = None, *, allow_download: bool = True
) -> Path:
    """A file no manifest pins (a user's `hf://ORG/NAME/FILE[@REVISION]`, a bare repo id).

    The same path as `fetch` — the cache first, then the Hub when allowed and
    `HF_HUB_OFFLINE` is unset, after the fast probe — at `revision` (a commit,
    branch or tag; None: `main`). Without a manifest sha256 the file is checked
    against the checksum the Hub announced for it, which names its cached blob
    (sha256 for LFS files, the git blob sha1 for small ones), and a `.safetensors`
    file must have a safetensors header.
    """
    from huggingface_hub.errors import HFValidationError

    entry = HubFile(repo=repo, file=file, revision=revision or "main")
    try:
        path = _from_cache(entry) or _download(entry, allow_download, False, None)
    except HFValidationError as error:
        raise WeightsError(f"{repo}/{file}: {_first_line(error)}") from None
    verify_announced(path, entry)
    return path


def verify_announced(path: Path, entry: HubFile) -> None:
    """`WeightsError` unless the cached file hashes to its blob's name (the Hub's
    checksum) and, for `.safetensors`, has a safetensors header; a corrupt blob is
    quarantined like a sha256 mismatch in `verify`."""
    real = path.resolve()
    announced = real.name if real.parent.name == "blobs" else ""
    actual = None
    if SHA256_NAME.fullmatch(announced):
        actual = sha256_of(real)
    elif GIT_SHA1_NAME.fullmatch(announced):
        actual = git_blob_sha1(real)
    if actual is not None and actual != announced:
        moved = quarantine(path, entry, actual)
        raise WeightsError(
            f"{describe(entry)}: the cached file does not match the checksum the Hub "
            f"announced ({announced[:12]}…, got {actual[:12]}…); not used; moved to {moved}"
        )
    if str(entry.file).endswith(".safetensors"):
        problem = safetensors_problem(path)
        if problem:
            raise WeightsError(
                f"{describe(entry)}: not a safetensors file ({problem}); del never loads pickle"
            )


def git_blob_sha1(path: Path) -> str:
    """The git object id of a file's content (what the Hub announces for non-LFS files)."""
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _from_cache(entry: HubFile) -> Path | None:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        found = hf_hub_download(
            entry.repo,
            entry.file,
            revision=entry.revision,
            cache_dir=cache_dir(),
            local_files_only=True,
        )
    except LocalEntryNotFoundError:
        return None
    return Path(found)


def _download(entry: HubFile, allow_download: bool, force: bool, name: str | None) -> Path:
    from huggingface_hub import errors as hf
    from huggingface_hub import hf_hub_download

    where = cache_dir()
    hint = (
        f"run `del zoo download {name}` on a machine with network"
        if name
        else f"run `hf download {entry.repo} {entry.file} --revision {entry.revision}` "
        "on a machine with network"
    )
    hint += ", or set HF_HOME to a cache that has it"
    missing = f"{describe(entry)} is not in the Hugging Face cache ({where})"
    if force and offline():
        raise WeightsError(
            f"--force downloads again, but HF_HUB_OFFLINE is set ({describe(entry)})"
        )
    if offline():
        raise WeightsError(f"{missing} and HF_HUB_OFFLINE is set; {hint}")
    if not allow_download:
        raise WeightsError(f"{missing} and downloading is off; {hint}")
    url = endpoint()
    problem = probe(url)
    if problem is not None:
        raise WeightsError(
            f"{describe(entry)} is not cached and the Hub is unreachable ({url}: {problem}); {hint}"
        )
    try:
        found = hf_hub_download(
            entry.repo,
            entry.file,
            revision=entry.revision,
            cache_dir=where,
            endpoint=url,
            force_download=force,
        )
    except hf.OfflineModeIsEnabled:
        raise WeightsError(
            f"{missing}: huggingface_hub is in offline mode (HF_HUB_OFFLINE was set when it "
            f"was imported); {hint}"
        ) from None
    except hf.RevisionNotFoundError:
        raise WeightsError(
            f"{entry.repo} on {url} has no revision {entry.revision}; "
            "the manifest pins a commit the repo does not have"
        ) from None
    except hf.RemoteEntryNotFoundError:
        raise WeightsError(
            f"{entry.repo}@{entry.revision[:12]} on {url} has no file {entry.file}"
        ) from None
    except hf.RepositoryNotFoundError:  # also gated / private without a token
        raise WeightsError(
            f"{entry.repo}: no such repo on {url}, or it is private or gated "
            "(log in with `hf auth login` or set HF_TOKEN)"
        ) from None
    except (hf.HfHubHTTPError, OSError) as error:
        raise WeightsError(f"downloading {describe(entry)} failed: {_first_line(error)}") from None
    return Path(found)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # a redirect is an answer enough
        return None


def probe(url: str, timeout: float | None = None) -> str | None:
    """None when `url` answers a HEAD request (any HTTP status) within `timeout`,
    else the reason. Name resolution is bounded too (it runs in a thread)."""
    import ssl

    timeout = PROBE_TIMEOUT if timeout is None else timeout
    silent = f"no answer within {timeout:g} s"
    outcome: dict[str, str] = {}

    def attempt() -> None:
        request = urllib.request.Request(url + "/", method="HEAD")
        try:
            urllib.request.build_opener(_NoRedirect).open(request, timeout=timeout).close()
        except urllib.error.HTTPError:
            pass
        except urllib.error.URLError as error:
            if isinstance(error.reason, TimeoutError):
                outcome["error"] = silent
            elif not isinstance(error.reason, ssl.SSLError):  # TLS is huggingface_hub's business
                outcome["error"] = _first_line(error.reason)
        except ssl.SSLError:
            pass
        except TimeoutError:
            outcome["error"] = silent
        except (OSError, ValueError) as error:
            outcome["error"] = _first_line(error)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout)  # also bounds name resolution, which has no timeout of its own
    return silent if worker.is_alive() else outcome.get("error")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path, entry: HubFile) -> None:
    """`WeightsError` unless `path` has `entry.sha256` and is a safetensors file;
    a corrupt cached blob is quarantined (module docstring)."""
    actual = sha256_of(path)
    if actual != entry.sha256:
        moved = quarantine(path, entry, actual)
        what = (
            f"moved to {moved}; it is downloaded again next time"
            if moved
            else "the cached file is what the Hub serves for that revision, so the manifest's "
            "sha256 or revision is wrong"
        )
        raise WeightsError(
            f"{describe(entry)}: sha256 mismatch (expected {entry.sha256}, got {actual}); "
            f"not used; {what}"
        )
    problem = safetensors_problem(path)
    if problem:
        raise WeightsError(
            f"{describe(entry)}: not a safetensors file ({problem}); del never loads pickle"
        )


def safetensors_problem(path: Path) -> str | None:
    """None when `path` starts with a safetensors header, else what is wrong."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            return f"{size} bytes"
        length = int.from_bytes(head, "little")
        if length < 2 or 8 + length > size or length > 100 << 20:
            kind = " (a zip or pickle)" if head[:2] in (b"PK", b"\x80\x02") else ""
            return f"no valid header length{kind}"
        try:
            header = json.loads(handle.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            return "the header is not JSON"
    return None if isinstance(header, dict) else "the header is not a JSON object"


def quarantine(path: Path, entry: HubFile, actual: str) -> Path | None:
    """Move a corrupt cached file out of the cache and drop the links to it.

    Returns where it went, or None when the blob is intact (its content hashes
    to its own name): then the manifest is wrong and the cache stays as it is.
    """
    real = path.resolve()
    if real.parent.name == "blobs" and real.name == actual:
        return None
    folder = cache_dir() / QUARANTINE
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    flat = "--".join(
        [*str(entry.repo).split("/"), (entry.revision or "")[:12], *str(entry.file).split("/")]
    )
    target = folder / f"{stamp}--{flat}--{actual[:12]}"
    shutil.move(str(real), str(target))
    snapshots = real.parent.parent / "snapshots" if real.parent.name == "blobs" else None
    if path.is_symlink() or path.exists():
        path.unlink(missing_ok=True)
    if snapshots is not None and snapshots.is_dir():
        for link in snapshots.rglob("*"):
            if link.is_symlink() and not link.exists() and link.resolve() == real:
                link.unlink()
    return target


def verify_packaged(path: Path, manifest: WeightsManifest, name: str) -> None:
    """`WeightsError` unless the weights shipped in the package match their manifest."""
    actual = sha256_of(path)
    if manifest.sha256 and actual != manifest.sha256:
        raise WeightsError(
            f"the packaged weights of '{name}' ({path}) do not match zoo/{name}.yaml: "
            f"sha256 {actual}, expected {manifest.sha256}; reinstall del"
        )


def extractor_weights(
    manifest: WeightsManifest,
    *,
    allow_download: bool = True,
    force: bool = False,
    name: str | None = None,
) -> dict[str, str | dict[str, str]]:
    """Verified local files of the extractors' published weights, in the form
    `recipe_extractors(weights=…)` takes: {name: path} or {name: {stream: path}}."""

    def one(entry: HubFile) -> str:
        return str(fetch(entry, allow_download=allow_download, force=force, name=name))

    found: dict[str, str | dict[str, str]] = {}
    for extractor, entry in manifest.extractors.items():
        if isinstance(entry, HubFile):
            found[extractor] = one(entry)
        elif isinstance(entry, dict):
            found[extractor] = {stream: one(item) for stream, item in entry.items()}
    return found


def _first_line(error: object) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
