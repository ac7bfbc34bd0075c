"""The Hub layer: pinned files from a real cache layout, verified; downloads from a local
HF_ENDPOINT; fast, one-line failures offline; manifests; publishing (dry run)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import pickle
import socket
import time
from pathlib import Path

import pytest
import torch
from hub_server import online_hub

from delcli.errors import ConfigError, WeightsError
from delcli.hub import download
from delcli.hub.download import fetch
from delcli.hub.manifest import HubFile, WeightsManifest
from delcli.model.del_model import DELModel
from delcli.recipe import check_manifest, load_recipe, zoo_names
from delcli.settings import from_dict
from delcli.weights import load_model, packaged_weights, resolve_weights, save_weights

from helpers import TINY_MODEL

REPO = "del-models/del-tiny"
REVISION = "0123456789abcdef0123456789abcdef01234567"
OTHER_REVISION = "fedcba9876543210fedcba9876543210fedcba98"


# -- a fake Hub: the cache layout and an HF_ENDPOINT server ----------------------------------


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tiny_weights(folder: Path, seed: int = 0) -> bytes:
    """The bytes of a del weights file (safetensors + recipe) of a tiny model."""
    data = {
        "visual": {"files": ["{video}_visual.npy"]},
        "audio": {"files": ["{video}_audio.npy"]},
        "fps": 25.0,
        "classes": ["a", "b", "c"],
    }
    recipe = load_recipe(
        {"name": "tiny", "title": "a tiny model", "data": data, "model": TINY_MODEL}
    )
    torch.manual_seed(seed)
    path = folder / f"tiny-{seed}.safetensors"
    save_weights(path, DELModel(recipe.model).state_dict(), recipe)
    return path.read_bytes()


def put_in_cache(
    cache: Path,
    data: bytes,
    *,
    repo=REPO,
    revision=REVISION,
    file="model.safetensors",
    blob: str | None = None,
) -> Path:
    """Lay `data` out as huggingface_hub does: blobs/<sha256>, snapshots/<commit>/<file>
    (a relative symlink to the blob), refs/main; returns the snapshot path."""
    folder = cache / f"models--{repo.replace('/', '--')}"
    blob_path = folder / "blobs" / (blob or sha256(data))
    blob_path.parent.mkdir(parents=True, exist_ok=True)
    blob_path.write_bytes(data)
    snapshot = folder / "snapshots" / revision / file
    snapshot.parent.mkdir(parents=True, exist_ok=True)
    snapshot.symlink_to(Path("../..") / "blobs" / blob_path.name)
    (folder / "refs").mkdir(exist_ok=True)
    (folder / "refs" / "main").write_text(revision)
    return snapshot


def entry_for(data: bytes, **fields) -> WeightsManifest:
    values = {
        "status": "published",
        "repo": REPO,
        "file": "model.safetensors",
        "revision": REVISION,
        "sha256": sha256(data),
        "licence": "MIT",
        **fields,
    }
    return from_dict(WeightsManifest, values, "weights")


@pytest.fixture(scope="module")
def weights_bytes(tmp_path_factory) -> bytes:
    return tiny_weights(tmp_path_factory.mktemp("weights"))


@pytest.fixture
def hub_server(hf_cache, monkeypatch):
    """A local Hub at HF_ENDPOINT, online (`hub_server.LocalHub`)."""
    with online_hub(monkeypatch) as hub:
        yield hub


def one_line(excinfo) -> str:
    message = str(excinfo.value)
    assert message and "\n" not in message
    return message


# -- the cache, offline ----------------------------------------------------------------------


def test_a_pinned_revision_resolves_from_the_cache_offline(hf_cache, weights_bytes):
    snapshot = put_in_cache(hf_cache, weights_bytes)
    path = fetch(entry_for(weights_bytes), allow_download=False)
    assert path == snapshot and path.read_bytes() == weights_bytes
    assert download.cached(entry_for(weights_bytes)) == snapshot


def test_another_revision_of_the_same_repo_is_not_taken_for_the_pinned_one(hf_cache, weights_bytes):
    put_in_cache(hf_cache, weights_bytes, revision=OTHER_REVISION)
    with pytest.raises(WeightsError) as excinfo:
        fetch(entry_for(weights_bytes))
    assert "is not in the Hugging Face cache" in one_line(excinfo)


def test_a_corrupt_blob_is_quarantined_and_never_used(hf_cache, weights_bytes, tmp_path):
    corrupt = tiny_weights(tmp_path, seed=1)  # a valid file, but not the published one
    snapshot = put_in_cache(hf_cache, corrupt, blob=sha256(weights_bytes))
    entry = entry_for(weights_bytes)
    with pytest.raises(WeightsError) as excinfo:
        fetch(entry)
    message = one_line(excinfo)
    assert f"expected {sha256(weights_bytes)}, got {sha256(corrupt)}" in message
    assert "del-quarantine" in message and "not used" in message
    quarantined = list((hf_cache / "del-quarantine").iterdir())
    assert [p.read_bytes() for p in quarantined] == [corrupt]
    assert not snapshot.is_symlink() and not snapshot.exists()
    assert not (hf_cache / f"models--{REPO.replace('/', '--')}" / "blobs" / entry.sha256).exists()
    with pytest.raises(WeightsError) as excinfo:  # the next try looks again, finds nothing
        fetch(entry)
    assert "is not in the Hugging Face cache" in one_line(excinfo)


def test_an_intact_blob_under_a_wrong_manifest_sha_is_refused_and_left_alone(
    hf_cache, weights_bytes
):
    snapshot = put_in_cache(hf_cache, weights_bytes)
    wrong = entry_for(weights_bytes, sha256="ab" * 32)
    with pytest.raises(WeightsError) as excinfo:
        fetch(wrong)
    assert "manifest's sha256 or revision is wrong" in one_line(excinfo)
    assert snapshot.read_bytes() == weights_bytes  # shared blobs stay for the right manifest
    assert fetch(entry_for(weights_bytes)) == snapshot


@pytest.mark.parametrize(
    "payload",
    [pickle.dumps({"weight": [1.0, 2.0]}), b"PK\x03\x04" + bytes(200)],
    ids=["pickle", "torch-zip"],
)
def test_a_file_that_is_not_safetensors_is_refused_even_with_the_right_sha(hf_cache, payload):
    put_in_cache(hf_cache, payload)
    with pytest.raises(WeightsError) as excinfo:
        fetch(entry_for(payload))
    assert "not a safetensors file" in one_line(excinfo) and "never loads pickle" in str(
        excinfo.value
    )


def test_not_cached_while_offline_is_one_line_at_once(hf_cache, weights_bytes):
    started = time.perf_counter()
    with pytest.raises(WeightsError) as excinfo:
        fetch(entry_for(weights_bytes), name="unav100")
    elapsed = time.perf_counter() - started
    message = one_line(excinfo)
    assert elapsed < 1.0, elapsed
    assert "HF_HUB_OFFLINE is set" in message
    assert "del zoo download unav100" in message and "HF_HOME" in message


def test_hf_hub_cache_is_read_when_called(hf_cache, weights_bytes, tmp_path, monkeypatch):
    other = tmp_path / "elsewhere"
    snapshot = put_in_cache(other, weights_bytes)
    monkeypatch.setenv("HF_HUB_CACHE", str(other))
    assert fetch(entry_for(weights_bytes), allow_download=False) == snapshot


# -- downloads from a local HF_ENDPOINT --------------------------------------------------------


def test_a_download_lands_in_the_cache_verified_and_is_then_used_offline(
    hub_server, hf_cache, weights_bytes, monkeypatch
):
    hub_server.add(REPO, {"model.safetensors": weights_bytes}, commit=REVISION)
    entry = entry_for(weights_bytes)
    path = fetch(entry)
    folder = hf_cache / f"models--{REPO.replace('/', '--')}"
    assert path == folder / "snapshots" / REVISION / "model.safetensors"
    assert path.resolve() == folder / "blobs" / entry.sha256
    assert path.read_bytes() == weights_bytes
    gets = [r for r in hub_server.requests if r[0] == "GET" and "/resolve/" in r[1]]
    assert gets == [("GET", f"/{REPO}/resolve/{REVISION}/model.safetensors")]

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub_server.commits.clear()
    assert fetch(entry) == path


def test_force_downloads_again(hub_server, hf_cache, weights_bytes):
    hub_server.add(REPO, {"model.safetensors": weights_bytes}, commit=REVISION)
    entry = entry_for(weights_bytes)
    fetch(entry)
    fetch(entry, force=True)
    gets = [r for r in hub_server.requests if r[0] == "GET" and "/resolve/" in r[1]]
    assert len(gets) == 2


def test_a_download_with_the_wrong_content_is_not_used(hub_server, hf_cache, weights_bytes):
    hub_server.add(REPO, {"model.safetensors": weights_bytes}, commit=REVISION)
    with pytest.raises(WeightsError) as excinfo:
        fetch(entry_for(weights_bytes, sha256="cd" * 32))
    assert "sha256 mismatch" in one_line(excinfo)


@pytest.mark.parametrize(
    ("commits", "expected"),
    [
        ({REPO: OTHER_REVISION}, f"has no revision {REVISION}"),
        ({REPO: REVISION}, "has no file model.safetensors"),
        ({}, "no such repo"),
    ],
    ids=["wrong-revision", "missing-file", "unknown-repo"],
)
def test_what_the_hub_lacks_is_one_line(hub_server, weights_bytes, commits, expected):
    for repo, commit in commits.items():
        hub_server.add(repo, {}, commit=commit)
    started = time.perf_counter()
    with pytest.raises(WeightsError) as excinfo:
        fetch(entry_for(weights_bytes))
    assert expected in one_line(excinfo)
    assert time.perf_counter() - started < 2.0


def test_an_unreachable_endpoint_fails_fast_in_one_line(hf_cache, weights_bytes, monkeypatch):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    started = time.perf_counter()
    with pytest.raises(WeightsError) as excinfo:
        fetch(entry_for(weights_bytes), name="unav100")
    elapsed = time.perf_counter() - started
    message = one_line(excinfo)
    assert elapsed < 2.0, elapsed
    assert "the Hub is unreachable" in message and f"127.0.0.1:{port}" in message
    assert "del zoo download unav100" in message


def test_an_endpoint_that_never_answers_fails_after_the_probe_timeout(
    hf_cache, weights_bytes, monkeypatch
):
    silent = socket.socket()  # accepts connections (backlog) but never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{silent.getsockname()[1]}")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(download, "PROBE_TIMEOUT", 0.5)
    started = time.perf_counter()
    try:
        with pytest.raises(WeightsError) as excinfo:
            fetch(entry_for(weights_bytes))
    finally:
        silent.close()
    assert time.perf_counter() - started < 2.0
    assert "no answer within 0.5 s" in one_line(excinfo)


# -- manifests ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", zoo_names())
def test_every_zoo_recipe_has_a_valid_weights_block(name):
    recipe = load_recipe(name)
    assert recipe.weights is not None
    check_manifest(recipe)
    assert recipe.weights.status in ("published", "packaged", "unpublished")


def test_the_demo_manifest_matches_the_packaged_weights():
    manifest = load_recipe("demo").weights
    path = packaged_weights("demo")
    assert manifest.status == "packaged" and path is not None
    assert (download.sha256_of(path), path.stat().st_size) == (manifest.sha256, manifest.size)


FILE = {"repo": REPO, "file": "v.safetensors", "revision": REVISION, "sha256": "cd" * 32}


def published(**changes) -> dict:
    block = {
        "status": "published",
        "repo": REPO,
        "file": "model.safetensors",
        "revision": REVISION,
        "sha256": "ab" * 32,
        "licence": "MIT",
    }
    block.update(changes)
    return {k: v for k, v in block.items() if v is not None}


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        (published(sha256=None), "weights.sha256 is missing (status published)"),
        (published(licence=None), "weights.licence is missing"),
        (published(revision="main"), "weights.revision='main' is a branch, tag or malformed"),
        (published(revision="v1.0"), "pin the 40-hex commit"),
        (published(sha256="abc"), "weights.sha256='abc' is not a sha256"),
        (published(file="model.bin"), "weights.file='model.bin': only .safetensors"),
        (published(repo="no-slash"), "weights.repo='no-slash' is not a Hub repo id"),
        (published(status="released"), "weights.status='released'; allowed: published"),
        ({"status": "packaged"}, "weights.sha256 is missing (status packaged)"),
        (
            published(extractors={"vggish": {"repo": REPO, "file": "v.safetensors"}}),
            "weights.extractors.vggish.revision is missing",
        ),
        (
            published(extractors={"i3d": {"rgb": {**FILE, "revision": "main"}}}),
            "weights.extractors.i3d.rgb.revision='main'",
        ),
        (published(extractors={"i3d": {"rgb": "x.safetensors"}}), "weights.extractors.i3d.rgb:"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_a_bad_weights_block_is_a_config_error_naming_the_key(block, expected):
    with pytest.raises(ConfigError) as excinfo:
        load_recipe({"name": "x", "weights": block})
    assert expected in one_line(excinfo)


def test_an_unpublished_block_may_leave_everything_open():
    recipe = load_recipe({"name": "x", "weights": {"status": "unpublished", "repo": None}})
    assert recipe.weights.status == "unpublished" and recipe.weights.repo is None


def test_extractor_weights_are_one_file_or_one_per_stream():
    block = published(extractors={"vggish": FILE, "i3d": {"rgb": FILE, "flow": FILE}, "x": None})
    manifest = load_recipe({"name": "x", "weights": block}).weights
    assert isinstance(manifest.extractors["vggish"], HubFile)
    assert sorted(manifest.extractor_files()) == ["i3d.flow", "i3d.rgb", "vggish"]
    assert manifest.extractors["vggish"].spec() == f"hf://{REPO}/v.safetensors@{REVISION}"


def test_extractor_weights_must_belong_to_an_extractor_of_the_recipe():
    recipe = load_recipe("unav100", ["weights.extractors.slowfast=null"])
    with pytest.raises(ConfigError) as excinfo:
        check_manifest(recipe)
    assert "weights.extractors.slowfast: not an extractor of recipe 'unav100'" in one_line(excinfo)


def test_extractor_weights_are_fetched_and_verified_like_the_model(hf_cache, tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.ones(2)}, tmp_path / "v.safetensors")
    data = (tmp_path / "v.safetensors").read_bytes()
    put_in_cache(hf_cache, data, repo="org/vggish", file="vggish.safetensors")
    file = {
        "repo": "org/vggish",
        "file": "vggish.safetensors",
        "revision": REVISION,
        "sha256": sha256(data),
    }
    manifest = from_dict(WeightsManifest, {"extractors": {"vggish": file, "i3d": {"rgb": file}}})
    found = download.extractor_weights(manifest, allow_download=False)
    assert Path(found["vggish"]).read_bytes() == data
    assert Path(found["i3d"]["rgb"]).read_bytes() == data


# -- a published zoo name, end to end ------------------------------------------------------------


@pytest.fixture
def published_unav100(hf_cache, weights_bytes, monkeypatch):
    """`unav100` as if its manifest said published, with the file in the (offline) cache."""
    import delcli.weights

    snapshot = put_in_cache(hf_cache, weights_bytes)
    pretend_unav100_published(monkeypatch, delcli.weights, weights_bytes)
    return snapshot


def pretend_unav100_published(monkeypatch, module, data: bytes) -> None:
    """Make `module.load_recipe("unav100")` carry a published manifest naming `data` at
    REPO@REVISION (the real recipe says unpublished)."""
    block = {
        "status": "published",
        "repo": REPO,
        "file": "model.safetensors",
        "revision": REVISION,
        "sha256": sha256(data),
        "licence": "MIT",
    }
    real = module.load_recipe

    def load(source, overrides=()):
        if source == "unav100":
            return real(source, [*overrides, f"weights={json.dumps(block)}"])
        return real(source, overrides)

    monkeypatch.setattr(module, "load_recipe", load)


def test_a_published_zoo_name_resolves_through_the_cache(published_unav100):
    assert resolve_weights("unav100") == published_unav100
    model, recipe = load_model("unav100")
    assert recipe.name == "tiny" and not model.training


def test_a_published_zoo_name_not_cached_offline_says_how_to_get_it(
    published_unav100, weights_bytes
):
    published_unav100.unlink()
    with pytest.raises(WeightsError) as excinfo:
        resolve_weights("unav100")
    assert "del zoo download unav100" in one_line(excinfo)


def test_unpublished_and_packaged_zoo_names_keep_their_behaviour():
    with pytest.raises(WeightsError) as excinfo:
        resolve_weights("thumos14")
    assert "not published yet; train them with: del train thumos14" in one_line(excinfo)
    assert resolve_weights("demo") == packaged_weights("demo")


def test_eval_weights_by_a_published_zoo_name(published_unav100, tmp_path, capsys):
    import numpy as np

    from delcli.cli.app import main

    (tmp_path / "f").mkdir()
    rng = np.random.default_rng(0)
    database = {}
    for video in ("v0", "v1"):
        for stream, dim in (("visual", 12), ("audio", 6)):
            np.save(tmp_path / "f" / f"{video}_{stream}.npy", rng.standard_normal((24, dim)))
        events = [{"label": "a", "segment": [1.0, 4.0]}, {"label": "c", "segment": [2.0, 6.0]}]
        database[video] = {"subset": "test", "duration": 8.16, "annotations": events}
    annotations = tmp_path / "gt.json"
    annotations.write_text(json.dumps({"version": "t", "database": database}))
    code = main(
        [
            "eval",
            "--weights",
            "unav100",
            "--features",
            str(tmp_path / "f"),
            "--annotations",
            str(annotations),
            "--format",
            "json",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert 0.0 <= json.loads(captured.out)["average_map"] <= 1.0


# -- publishing ----------------------------------------------------------------------------------


def load_publish():
    path = Path(__file__).parent.parent / "scripts" / "publish.py"
    spec = importlib.util.spec_from_file_location("publish_script", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_publish_dry_run_of_the_packaged_demo_writes_the_folder_and_prints_the_block(
    tmp_path, capsys, monkeypatch
):
    import yaml

    monkeypatch.delenv("HF_TOKEN", raising=False)
    out = tmp_path / "hub"
    demo = packaged_weights("demo")
    code = load_publish().main(
        [str(demo.parent), "--repo", "del-models/demo", "--dry-run", "--out", str(out)]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md",
        "config.yaml",
        "model.safetensors",
    ]
    assert (out / "model.safetensors").read_bytes() == demo.read_bytes()
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["name"] == "demo" and len(config["data"]["classes"]) == 8
    assert config["data"]["stride"] == 4 and config["data"]["fps"] == 12.5
    card = (out / "README.md").read_text()
    assert card.startswith("---\nlicense: mit\n") and "## Evaluation (mAP %)" in card
    block = yaml.safe_load(captured.out)["weights"]
    manifest = load_recipe("demo").weights
    assert block["sha256"] == manifest.sha256 and block["size"] == manifest.size
    assert block["revision"] == "<fill after upload>" and block["repo"] == "del-models/demo"
    assert "dry run" in captured.err


def test_publish_of_a_run_uploads_with_a_token_and_prints_the_commit(tmp_path, capsys, monkeypatch):
    import yaml

    run = tmp_path / "run"
    run.mkdir()
    (run / "best.safetensors").write_bytes(tiny_weights(tmp_path))
    evals = [
        {
            "event": "eval",
            "epoch": e,
            "map": {"0.5": 0.1 * e, "0.7": 0.05 * e},
            "average_map": 0.07 * e,
            "best": e == 2,
        }
        for e in (1, 2, 3)
    ]
    (run / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in evals))
    (run / "test_eval.json").write_text(
        json.dumps({"split": "test", "map": {"0.5": 0.5}, "average_map": 0.5})
    )
    uploads = []

    class FakeApi:
        def __init__(self, endpoint=None):
            pass

        def create_repo(self, repo, **kwargs):
            uploads.append(("create", repo))

        def upload_folder(self, repo_id, folder_path, commit_message):
            uploads.append(("upload", repo_id, sorted(p.name for p in Path(folder_path).iterdir())))
            return type("Info", (), {"oid": REVISION, "commit_url": "http://hub/commit"})()

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: "hf_test")
    code = load_publish().main([str(run), "--repo", "org/del-tiny", "--out", str(tmp_path / "o")])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert uploads == [
        ("create", "org/del-tiny"),
        ("upload", "org/del-tiny", ["README.md", "config.yaml", "model.safetensors"]),
    ]
    block = yaml.safe_load(captured.out)["weights"]
    assert block["revision"] == REVISION
    from_dict(WeightsManifest, block, "weights")  # the printed block is a valid manifest
    card = (tmp_path / "o" / "README.md").read_text()
    assert "| validation | 20.0 | 10.0 | **14.0** |" in card  # the best epoch (2)
    assert "| test | 50.0 | **50.0** |" in card
