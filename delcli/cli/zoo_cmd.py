"""`del zoo`: the model zoo — list the models, show one manifest, download weights."""

from __future__ import annotations

import difflib
import enum
import json
from typing import TYPE_CHECKING, Any

import typer

from delcli.cli.output import TableJson, note, stdout_console, write_json
from delcli.errors import ConfigError, WeightsError

if TYPE_CHECKING:
    from delcli.recipe import Recipe

zoo_app = typer.Typer(
    name="zoo",
    help="The model zoo: list the models, show a manifest, download weights into the "
    "Hugging Face cache.",
    no_args_is_help=True,
    add_completion=False,
)

LIST_HELP = """List the zoo's models: benchmark, classes, features, the paper's average mAP, publication status and whether the weights are here (in the Hugging Face cache, or packaged with del).

Examples:

  del zoo list

  del zoo list --format json | jq '.[] | select(.cached) | .name'
"""  # noqa: E501 - one line per paragraph: the help formatter wraps them

SHOW_HELP = """Show one model's manifest: the recipe in brief (benchmark, classes, feature geometry), the paper's row and the weights block (Hub repo, file, pinned revision, sha256, licence, status).

Examples:

  del zoo show unav100

  del zoo show demo --format yaml
"""  # noqa: E501

DOWNLOAD_HELP = """Download a published model's weights (and its feature extractors' weights) into the Hugging Face cache, pinned to the manifest's revision and verified by sha256; prints the local paths. HF_HOME, HF_HUB_CACHE, HF_ENDPOINT, HF_TOKEN and HF_HUB_OFFLINE are honoured.

Examples:

  del zoo download unav100

  HF_HOME=/shared/hf del zoo download thumos14 --force
"""  # noqa: E501


class ShowFormat(str, enum.Enum):
    table = "table"
    json = "json"
    yaml = "yaml"


def register(app: typer.Typer) -> None:
    app.add_typer(zoo_app, name="zoo")


def zoo_recipe(name: str) -> Recipe:
    """The zoo recipe `name`, or a one-line error with the closest names."""
    from delcli.recipe import load_recipe, zoo_names

    names = zoo_names()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=2)
        hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
        raise ConfigError(f"no model '{name}' in the zoo{hint}; known: {', '.join(names)}")
    return load_recipe(name)


def weights_state(recipe: Recipe) -> tuple[bool | None, str | None]:
    """(are the weights here?, where) — None for weights that do not exist yet."""
    from delcli.hub.download import cached
    from delcli.recipe import manifest_of
    from delcli.weights import packaged_weights

    manifest = manifest_of(recipe)
    if manifest.status == "packaged":
        path = packaged_weights(recipe.name)
        return path is not None, str(path) if path else None
    if manifest.status == "published":
        path = cached(manifest)
        return path is not None, str(path) if path else None
    return None, None


def summary(recipe: Recipe) -> dict[str, Any]:
    """The manifest of one model as plain data (what `show --format json` prints)."""
    from delcli.recipe import check_manifest, manifest_of
    from delcli.settings import to_dict

    check_manifest(recipe)
    data, model = recipe.data, recipe.model
    is_cached, path = weights_state(recipe)
    extractors = recipe.features.extractors if recipe.features else []
    return {
        "name": recipe.name,
        "title": recipe.title,
        "benchmark": data.benchmark,
        "num_classes": len(data.classes) if data.classes else model.num_classes,
        "outputs": model.num_classes,
        "classes": data.classes,
        "features": {
            "extractors": [{"name": e.name, "options": e.options} for e in extractors],
            "visual_dim": model.visual_dim,
            "audio_dim": model.audio_dim,
            "fps": data.fps,
            "stride": data.stride,
            "window": data.window,
            "resize_length": data.resize_length,
            "max_seq_len": model.max_seq_len,
        },
        "paper": to_dict(recipe.paper),
        "weights": {**to_dict(manifest_of(recipe)), "cached": is_cached, "path": path},
        "train_command": f"del train {recipe.name} --features DIR",
    }


@zoo_app.command("list", help=LIST_HELP)
def list_command(
    output_format: TableJson = typer.Option(
        TableJson.table, "--format", "-f", help="table for people, json for machines."
    ),
) -> None:
    from delcli.recipe import zoo_names

    rows = [summary(zoo_recipe(name)) for name in zoo_names()]
    if output_format is TableJson.json:
        write_json([{**row, "cached": row["weights"]["cached"]} for row in rows])
        return
    from rich.table import Table

    table = Table(title="del model zoo", title_justify="left")
    for column in ("model", "benchmark", "classes", "features", "paper mAP", "status", "cached"):
        table.add_column(column, justify="right" if column in ("classes", "paper mAP") else "left")
    for row in rows:
        paper, weights = row["paper"], row["weights"]
        cached = {None: "—", True: "yes", False: "no"}[weights["cached"]]
        table.add_row(
            row["name"],
            row["benchmark"] or "synthetic",
            str(row["num_classes"]),
            _features_text(row["features"]),
            f"{paper['average']:.1f}" if paper else "—",
            weights["status"],
            cached,
        )
    stdout_console().print(table)


@zoo_app.command("show", help=SHOW_HELP)
def show_command(
    name: str = typer.Argument(..., help="A zoo model, e.g. unav100 (see del zoo list)."),
    output_format: ShowFormat = typer.Option(
        ShowFormat.table, "--format", "-f", help="table for people; json or yaml for machines."
    ),
) -> None:
    info = summary(zoo_recipe(name))
    if output_format is ShowFormat.json:
        write_json(info)
        return
    if output_format is ShowFormat.yaml:
        import yaml

        typer.echo(yaml.safe_dump(info, sort_keys=False, allow_unicode=True), nl=False)
        return
    from rich.table import Table

    table = Table(
        title=f"{info['name']} · {info['title']}", title_justify="left", show_header=False
    )
    table.add_column("key", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in _show_rows(info):
        table.add_row(key, value)
    stdout_console().print(table)


@zoo_app.command("download", help=DOWNLOAD_HELP)
def download_command(
    name: str = typer.Argument(..., help="A zoo model, e.g. unav100 (see del zoo list)."),
    force: bool = typer.Option(False, "--force", help="Download again even when cached."),
) -> None:
    from delcli.hub.download import extractor_weights, fetch, verify_packaged
    from delcli.recipe import check_manifest, manifest_of
    from delcli.weights import packaged_weights

    recipe = zoo_recipe(name)
    check_manifest(recipe)
    manifest = manifest_of(recipe)
    if manifest.status == "unpublished":
        raise WeightsError(
            f"weights for '{name}' are not published yet; "
            f"train them with: del train {name} --features DIR"
        )
    if manifest.status == "packaged":
        path = packaged_weights(name)
        if path is None:
            raise WeightsError(f"the packaged weights of '{name}' are missing; reinstall del")
        verify_packaged(path, manifest, name)
        note(f"{name}: packaged with del, sha256 verified")
        typer.echo(str(path))
    else:
        path = fetch(manifest, allow_download=True, force=force, name=name)
        note(f"{name}: {manifest.repo}@{manifest.revision[:12]} in the cache, sha256 verified")
        typer.echo(str(path))
    for extractor, found in extractor_weights(manifest, force=force, name=name).items():
        for label, file in found.items() if isinstance(found, dict) else [(None, found)]:
            note(f"extractor {extractor}{'.' + label if label else ''}: sha256 verified")
            typer.echo(file)


def _features_text(features: dict) -> str:
    names = " + ".join(e["name"] for e in features["extractors"]) or "precomputed"
    return f"{names} · {features['visual_dim']}+{features['audio_dim']}"


def _show_rows(info: dict) -> list[tuple[str, str]]:
    features, weights, paper = info["features"], info["weights"], info["paper"]
    classes = info["classes"] or []
    shown = ", ".join(classes[:6]) + (f", … ({len(classes)})" if len(classes) > 6 else "")
    grid = (
        f"{features['fps']} fps, stride {features['stride']}, window {features['window']}"
        if features["fps"]
        else f"stride {features['stride']}, window {features['window']} (the video's fps)"
    )
    if features["resize_length"]:
        grid += f", resized to {features['resize_length']}"
    rows = [
        ("benchmark", info["benchmark"] or "synthetic"),
        ("classes", f"{info['num_classes']}" + (f": {shown}" if shown else "")),
        ("features", _features_text(features)),
        ("grid", f"{grid}; max {features['max_seq_len']} steps"),
    ]
    if paper:
        cells = ", ".join(
            f"{t:g}: {m:.1f}" for t, m in zip(paper["tious"], paper["map"], strict=True)
        )
        rows.append(("paper mAP", f"{paper['average']:.1f} avg ({paper['table']}; {cells})"))
    rows.append(("status", weights["status"]))
    for key in ("repo", "file", "revision", "sha256", "size", "licence"):
        if weights.get(key) is not None:
            rows.append((key, str(weights[key])))
    if weights["cached"] is not None:
        rows.append(("cached", weights["path"] or "no — del zoo download " + info["name"]))
    else:
        rows.append(("train", info["train_command"]))
    for extractor, entry in (weights.get("extractors") or {}).items():
        rows.append((f"extractor {extractor}", json.dumps(entry) if entry else "not published"))
    return rows
