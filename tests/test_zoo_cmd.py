"""`del zoo list | show | download` as a user meets them: tables, JSON, one-line errors."""

from __future__ import annotations

import json
import time

import pytest
import yaml
from test_hub import (
    REPO,
    REVISION,
    entry_for,
    pretend_unav100_published,
    put_in_cache,
    sha256,
    tiny_weights,
)

from delcli.cli import app as cli
from delcli.cli import zoo_cmd
from delcli.recipe import zoo_names
from delcli.weights import packaged_weights


@pytest.fixture(autouse=True)
def zoo_registered():
    """`del zoo` on the app (app.py registers it; this keeps the tests independent of that)."""
    if not any(group.name == "zoo" for group in cli.app.registered_groups):
        zoo_cmd.register(cli.app)


@pytest.fixture
def published_unav100(hf_cache, tmp_path, monkeypatch):
    """`unav100` as if published: its manifest names a file the test may put in the cache."""
    import delcli.recipe

    data = tiny_weights(tmp_path)
    pretend_unav100_published(monkeypatch, delcli.recipe, data)
    return data


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line_error(err: str) -> str:
    assert err.startswith("del: error: ") and err.count("\n") == 1, err
    return err


def test_list_shows_every_model_with_status_and_whether_it_is_here(capsys, hf_cache):
    code, out, _ = run(capsys, "zoo", "list")
    assert code == 0
    for name in zoo_names():
        assert name in out
    demo = next(line for line in out.splitlines() if "demo" in line)
    assert "packaged" in demo and "yes" in demo and "basic" in demo
    unav = next(line for line in out.splitlines() if "unav100" in line)
    assert "unpublished" in unav and "51.1" in unav and "100" in unav and "i3d + vggish" in unav


def test_list_json_is_machine_readable(capsys, hf_cache):
    code, out, _ = run(capsys, "zoo", "list", "--format", "json")
    assert code == 0
    rows = {row["name"]: row for row in json.loads(out)}
    assert sorted(rows) == zoo_names()
    assert rows["demo"]["weights"]["status"] == "packaged" and rows["demo"]["cached"] is True
    assert rows["unav100"]["cached"] is None and rows["unav100"]["paper"]["average"] == 51.1
    assert rows["thumos14"]["num_classes"] == 20
    assert [e["name"] for e in rows["unav100"]["features"]["extractors"]] == ["i3d", "vggish"]


def test_a_published_model_is_listed_as_cached_once_it_is_in_the_cache(
    capsys, hf_cache, published_unav100
):
    _, out, _ = run(capsys, "zoo", "list", "-f", "json")
    assert {r["name"]: r["cached"] for r in json.loads(out)}["unav100"] is False
    put_in_cache(hf_cache, published_unav100)
    _, out, _ = run(capsys, "zoo", "list")
    unav = next(line for line in out.splitlines() if "unav100" in line)
    assert "published" in unav and "yes" in unav


def test_show_prints_the_manifest(capsys, hf_cache):
    code, out, _ = run(capsys, "zoo", "show", "unav100")
    assert code == 0
    assert "Table 4" in out and "unpublished" in out and "del train unav100" in out
    assert "25.0 fps, stride 8.0, window 24.0" in out


@pytest.mark.parametrize("output_format", ["json", "yaml"])
def test_show_json_and_yaml_hold_the_recipe_summary_weights_and_paper(
    capsys, hf_cache, output_format
):
    code, out, _ = run(capsys, "zoo", "show", "demo", "--format", output_format)
    assert code == 0
    info = json.loads(out) if output_format == "json" else yaml.safe_load(out)
    assert info["name"] == "demo" and info["paper"] is None
    assert info["weights"]["status"] == "packaged" and info["weights"]["cached"] is True
    assert info["weights"]["sha256"] == sha256(packaged_weights("demo").read_bytes())
    assert info["features"]["fps"] == 12.5


def test_download_of_an_unpublished_model_says_how_to_train_it(capsys, hf_cache):
    code, out, err = run(capsys, "zoo", "download", "unav100")
    assert (code, out) == (2, "")
    assert one_line_error(err) == (
        "del: error: weights for 'unav100' are not published yet; "
        "train them with: del train unav100 --features DIR\n"
    )


@pytest.mark.parametrize("command", ["show", "download"])
def test_an_unknown_name_suggests_the_closest(capsys, command):
    code, _, err = run(capsys, "zoo", command, "thumos")
    assert code == 2
    assert "no model 'thumos' in the zoo (did you mean 'thumos14'?)" in one_line_error(err)


def test_download_of_the_packaged_demo_verifies_it_and_prints_its_path(capsys, hf_cache):
    code, out, err = run(capsys, "zoo", "download", "demo")
    assert code == 0
    assert out == f"{packaged_weights('demo')}\n" and "sha256 verified" in err


def test_download_of_a_published_model_offline_and_not_cached_is_one_line_at_once(
    capsys, published_unav100
):
    started = time.perf_counter()
    code, out, err = run(capsys, "zoo", "download", "unav100")
    assert time.perf_counter() - started < 1.0
    assert (code, out) == (2, "")
    assert "HF_HUB_OFFLINE is set" in one_line_error(err)


def test_download_of_a_published_model_from_the_cache(capsys, hf_cache, published_unav100):
    snapshot = put_in_cache(hf_cache, published_unav100)
    code, out, err = run(capsys, "zoo", "download", "unav100")
    assert code == 0, err
    assert out == f"{snapshot}\n"


def test_download_from_a_local_hub_then_offline(capsys, hf_cache, published_unav100, monkeypatch):
    from hub_server import online_hub

    with online_hub(monkeypatch) as hub:
        hub.add(REPO, {"model.safetensors": published_unav100}, commit=REVISION)
        code, out, err = run(capsys, "zoo", "download", "unav100")
        assert code == 0, err
        path = out.strip()
        assert path.endswith(f"snapshots/{REVISION}/model.safetensors")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert run(capsys, "zoo", "download", "unav100")[:2] == (0, f"{path}\n")


def test_a_corrupt_cached_file_is_refused_by_download(
    capsys, hf_cache, published_unav100, tmp_path
):
    put_in_cache(hf_cache, tiny_weights(tmp_path, seed=3), blob=sha256(published_unav100))
    code, out, err = run(capsys, "zoo", "download", "unav100")
    assert (code, out) == (2, "")
    assert "sha256 mismatch" in one_line_error(err) and "del-quarantine" in err


def test_a_manifest_with_a_missing_field_is_one_line(capsys, monkeypatch):
    import delcli.recipe

    real = delcli.recipe.load_recipe
    block = {
        "status": "published",
        "repo": REPO,
        "file": "model.safetensors",
        "revision": REVISION,
        "licence": "MIT",
    }
    monkeypatch.setattr(
        delcli.recipe,
        "load_recipe",
        lambda source, overrides=(): real(source, [*overrides, f"weights={json.dumps(block)}"]),
    )
    code, _, err = run(capsys, "zoo", "show", "unav100")
    assert code == 2
    assert "weights.sha256 is missing (status published)" in one_line_error(err)


def test_a_packaged_file_that_does_not_match_its_manifest_is_refused(capsys, monkeypatch):
    import delcli.recipe

    real = delcli.recipe.load_recipe
    monkeypatch.setattr(
        delcli.recipe,
        "load_recipe",
        lambda source, overrides=(): real(source, [*overrides, "weights.sha256=" + "f" * 64]),
    )
    code, _, err = run(capsys, "zoo", "download", "demo")
    assert code == 2
    assert "do not match zoo/demo.yaml" in one_line_error(err)


def test_entry_helper_builds_a_valid_manifest():
    assert entry_for(b"x").status == "published"
