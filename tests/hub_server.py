"""A local Hugging Face Hub for tests: the `resolve` route huggingface_hub downloads from.

`LocalHub.add(repo, files, commit=…, branch="main")` publishes files; a branch
name resolves to its commit, as on the Hub. Answers mimic the Hub's: large
(`.safetensors`) files announce their sha256 (the LFS oid) as ETag, small ones
their git blob sha1; every answer for a known revision carries
`X-Repo-Commit`. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit


def announced_etag(name: str, data: bytes) -> str:
    if name.endswith(".safetensors"):
        return hashlib.sha256(data).hexdigest()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class LocalHub(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.commits: dict[str, dict[str, dict[str, bytes]]] = {}  # repo → commit → files
        self.branches: dict[str, dict[str, str]] = {}  # repo → branch → commit
        self.requests: list[tuple[str, str]] = []
        self.thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"

    def add(self, repo: str, files: dict[str, bytes], commit: str, branch: str = "main") -> None:
        self.commits.setdefault(repo, {})[commit] = dict(files)
        self.branches.setdefault(repo, {})[branch] = commit

    def downloads(self) -> list[str]:
        """Paths fetched with GET (the file bodies sent)."""
        return [path for method, path in self.requests if method == "GET"]

    def __enter__(self) -> LocalHub:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
        self.server_close()


@contextlib.contextmanager
def online_hub(monkeypatch) -> Iterator[LocalHub]:
    """A running `LocalHub` as HF_ENDPOINT, with huggingface_hub online (no telemetry)."""
    from huggingface_hub import constants

    with LocalHub() as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.delenv("HF_HUB_OFFLINE")
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # read at import by the library
        monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
        yield hub


class _Handler(BaseHTTPRequestHandler):
    server: LocalHub

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def do_GET(self) -> None:
        self._answer(body=True)

    def _answer(self, body: bool) -> None:
        self.server.requests.append((self.command, self.path))
        parts = unquote(urlsplit(self.path).path).strip("/").split("/")
        if len(parts) < 5 or parts[2] != "resolve":
            return self._reply(404, {})
        repo, revision, name = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
        commits = self.server.commits.get(repo)
        if commits is None:
            return self._reply(404, {"X-Error-Code": "RepoNotFound"})
        commit = self.server.branches[repo].get(revision, revision)
        if commit not in commits:
            return self._reply(404, {"X-Error-Code": "RevisionNotFound"})
        data = commits[commit].get(name)
        if data is None:
            return self._reply(404, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit})
        headers = {"X-Repo-Commit": commit, "ETag": f'"{announced_etag(name, data)}"'}
        self._reply(200, headers, data if body else b"", len(data))

    def _reply(self, status: int, headers: dict, data: bytes = b"", length: int = 0) -> None:
        self.send_response(status)
        for key, value in {**headers, "Content-Length": str(length or len(data))}.items():
            self.send_header(key, value)
        self.end_headers()
        if data:
            self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass
