"""Publish a trained model to the Hugging Face Hub and print its zoo manifest block.

Writes a Hub folder —

- `model.safetensors`: the run's weights, byte for byte (recipe inside);
- `config.yaml`: the full recipe (feature geometry, class list, model,
  training, post-processing) — machine-local paths dropped;
- `README.md`: a model card with the validation table (`metrics.jsonl`) and
  the test table when there is one (`test_eval.json`, `del eval --format json`);

— uploads it with `HfApi().upload_folder` when a token is available (HF_TOKEN
or `hf auth login`; HF_ENDPOINT honoured) unless `--dry-run`, and prints the
`weights:` block for `zoo/NAME.yaml` with the commit the upload made (a dry
run prints `<fill after upload>`, which the manifest refuses until filled in).

    python scripts/publish.py runs/unav100 --repo ORG/del-unav100
    python scripts/publish.py delcli/resources/demo --repo ORG/del-demo \\
        --test-results data/demo/test_eval.json --dry-run

SOURCE is a run directory (best.safetensors, else last.safetensors), a
weights file, or a folder holding one .safetensors (the packaged demo).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import yaml

from delcli.errors import DelError, WeightsError
from delcli.hub.download import sha256_of
from delcli.hub.manifest import REPO_ID, HubFile, manifest_block
from delcli.recipe import Recipe, load_recipe, recipe_to_dict, zoo_names
from delcli.weights import RUN_DIR_FILES, load_weights

PLACEHOLDER = "<fill after upload>"
FILE = "model.safetensors"


def weights_file(source: Path, given: Path | None) -> Path:
    if given is not None:
        return given
    if source.is_file():
        return source
    if not source.is_dir():
        raise WeightsError(f"{source}: no such file or directory")
    for name in RUN_DIR_FILES:
        if (source / name).is_file():
            return source / name
    found = sorted(source.glob("*.safetensors"))
    if len(found) != 1:
        raise WeightsError(
            f"{source}: expected {' or '.join(RUN_DIR_FILES)} or exactly one .safetensors "
            f"(found {len(found)}); name the file with --weights"
        )
    return found[0]


def validation_table(source: Path, weights: Path, metadata: dict) -> dict | None:
    """{tious, map, average_map, epoch} of the epoch the weights come from."""
    log = source / "metrics.jsonl" if source.is_dir() else weights.parent / "metrics.jsonl"
    if log.is_file():
        evals = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        evals = [e for e in evals if e.get("event") == "eval"]
        best = [e for e in evals if e.get("best")]
        # best.safetensors holds the best epoch's weights; last.safetensors the last one's
        pool = best if best and weights.name != "last.safetensors" else evals
        if pool:
            chosen = pool[-1]
            return {
                "tious": [float(t) for t in chosen["map"]],
                "map": [float(v) for v in chosen["map"].values()],
                "average_map": chosen["average_map"],
                "epoch": chosen.get("epoch"),
            }
    if "average_map" in metadata:  # only the average was kept with the weights
        return {
            "tious": [],
            "map": [],
            "average_map": float(metadata["average_map"]),
            "epoch": metadata.get("epoch"),
        }
    return None


def held_out_table(source: Path, given: Path | None) -> dict | None:
    path = given or (source / "test_eval.json" if source.is_dir() else None)
    if path is None or not path.is_file():
        if given is not None:
            raise WeightsError(f"{given}: no such file")
        return None
    report = json.loads(path.read_text())
    return {
        "tious": [float(t) for t in report["map"]],
        "map": list(report["map"].values()),
        "average_map": report["average_map"],
        "average_tious": report.get("average_tious"),
        "split": report.get("split", "test"),
        "counts": report.get("counts", {}),
    }


def config_data(recipe: Recipe) -> dict:
    data = recipe_to_dict(recipe)
    data["weights"] = None  # the manifest lives in the zoo, not next to the weights
    for key in ("annotations", "features"):
        value = data["data"].get(key)
        if isinstance(value, str) and Path(value).is_absolute():
            data["data"][key] = None
    return data


def percent_row(table: dict) -> str:
    cells = " | ".join(f"{100 * v:.1f}" for v in table["map"])
    return f"{cells}{' | ' if cells else ''}**{100 * table['average_map']:.1f}**"


def model_card(
    recipe: Recipe,
    repo: str,
    sha256: str,
    size: int,
    licence: str,
    val: dict | None,
    test: dict | None,
) -> str:
    data, model = recipe.data, recipe.model
    extractors = ", ".join(e.name for e in recipe.features.extractors) if recipe.features else None
    classes = data.classes or []
    lines = [
        "---",
        f"license: {licence.lower()}",
        "library_name: del",
        "tags: [dense-event-localization, temporal-action-localization, audio-visual, safetensors]",
        "---",
        "",
        f"# {recipe.title or recipe.name}",
        "",
        "A DEL model (dense audio-visual event localization) for the `del` tool: every event "
        "of a video with start, end, class and score.",
        "",
        "## Use",
        "",
        "```bash",
        f"# with del's zoo manifest (zoo/{recipe.name}.yaml): fetched, pinned, verified",
        f"del predict video.mp4 --weights {recipe.name}",
        "# or by hand",
        f"hf download {repo} {FILE} --local-dir {recipe.name}",
        f"del predict video.mp4 --weights {recipe.name}/{FILE}",
        "```",
        "",
        "## Files",
        "",
        f"- `{FILE}`: weights and recipe (safetensors metadata `recipe`), {size} bytes, "
        f"sha256 `{sha256}`",
        "- `config.yaml`: the recipe — feature geometry, class list, model, training, "
        "post-processing",
        "",
        "## Features",
        "",
        f"- extractors: {extractors or 'precomputed features (see config.yaml)'}",
        f"- visual {model.visual_dim}-d, audio {model.audio_dim}-d",
        f"- grid: {data.fps or 'the video'} fps, stride {data.stride:g}, window {data.window:g} "
        f"frames" + (f", resized to {data.resize_length}" if data.resize_length else ""),
        "",
    ]
    lines += ["## Evaluation (mAP %)", ""]
    for label, table in (("validation", val), (test and test["split"], test)):
        if not table:
            continue
        header = " | ".join(f"{t:g}" for t in table["tious"])
        lines += [
            f"| split | {header}{' | ' if header else ''}avg |",
            "|---" * (len(table["tious"]) + 2) + "|",
            f"| {label} | {percent_row(table)} |",
            "",
        ]
        if label == "validation" and table.get("epoch") is not None:
            lines += [f"Validation: the weights' epoch ({table['epoch']}).", ""]
    if not (val or test):
        lines += ["No evaluation was recorded with these weights.", ""]
    if recipe.paper:
        cells = ", ".join(
            f"{t:g}: {m:.1f}" for t, m in zip(recipe.paper.tious, recipe.paper.map, strict=True)
        )
        lines += [
            f"The paper reports {recipe.paper.average:.1f} ({recipe.paper.table}; {cells}).",
            "",
        ]
    if classes:
        lines += [f"## Classes ({len(classes)})", "", ", ".join(classes), ""]
    return "\n".join(lines)


def write_folder(out: Path, weights: Path, recipe: Recipe, card: str) -> None:
    """model.safetensors, config.yaml and README.md in `out`, each written atomically."""
    out.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_dump(config_data(recipe), sort_keys=False, allow_unicode=True)
    for name, content in ((FILE, weights), ("config.yaml", config), ("README.md", card)):
        temporary = out / f".{name}.tmp"
        if isinstance(content, Path):
            shutil.copyfile(content, temporary)
        else:
            temporary.write_text(content, encoding="utf-8")
        os.chmod(temporary, 0o644)
        temporary.replace(out / name)


def upload(out: Path, repo: str, message: str) -> str:
    """Upload the folder; the commit it made."""
    from huggingface_hub import HfApi

    api = HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None)
    api.create_repo(repo, repo_type="model", exist_ok=True)
    info = api.upload_folder(repo_id=repo, folder_path=str(out), commit_message=message)
    print(f"uploaded: {info.commit_url}", file=sys.stderr)
    return info.oid


def publish(args: argparse.Namespace) -> tuple[str, dict]:
    if not REPO_ID.fullmatch(args.repo):
        raise WeightsError(f"--repo {args.repo!r} is not a Hub repo id (ORG/NAME)")
    weights = weights_file(args.source, args.weights)
    _, recipe, metadata = load_weights(weights)
    zoo = load_recipe(recipe.name).weights if recipe.name in zoo_names() else None
    licence = args.licence or (zoo.licence if zoo and zoo.licence else "MIT")
    sha256, size = sha256_of(weights), weights.stat().st_size
    val = validation_table(args.source, weights, metadata)
    test = held_out_table(args.source, args.test_results)
    out = args.out or Path("build") / "hub" / args.repo.replace("/", "--")
    write_folder(
        out, weights, recipe, model_card(recipe, args.repo, sha256, size, licence, val, test)
    )
    print(f"wrote {out}/ ({FILE}, config.yaml, README.md)", file=sys.stderr)

    from huggingface_hub import get_token

    revision = PLACEHOLDER
    if args.dry_run or not get_token():
        why = "--dry-run" if args.dry_run else "no Hugging Face token (HF_TOKEN or hf auth login)"
        print(
            f"dry run ({why}): nothing uploaded; fill in the revision after "
            f"`hf upload {args.repo} {out}`",
            file=sys.stderr,
        )
    else:
        revision = upload(out, args.repo, args.message or f"Publish {recipe.name} weights")
    block = manifest_block(
        HubFile(
            repo=args.repo, file=FILE, revision=revision, sha256=sha256, size=size, licence=licence
        )
    )
    block["extractors"] = recipe_to_dict(zoo).get("extractors", {}) if zoo else {}
    return recipe.name, {"weights": block}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "source",
        type=Path,
        help="run directory, weights file, or a folder holding one .safetensors",
    )
    parser.add_argument("--repo", required=True, help="Hub model repo id, ORG/NAME")
    parser.add_argument("--weights", type=Path, help="the weights file (default: from SOURCE)")
    parser.add_argument(
        "--test-results",
        type=Path,
        help="`del eval --format json` output for the test table "
        "(default: SOURCE/test_eval.json when present)",
    )
    parser.add_argument("--licence", help="default: the zoo manifest's, else MIT")
    parser.add_argument("--out", type=Path, help="Hub folder (default: build/hub/ORG--NAME)")
    parser.add_argument(
        "--message", "--revision-message", dest="message", help="commit message of the upload"
    )
    parser.add_argument("--dry-run", action="store_true", help="write the folder, upload nothing")
    args = parser.parse_args(argv)
    try:
        name, block = publish(args)
    except DelError as error:
        print(f"publish: error: {error}", file=sys.stderr)
        return 2
    print(f"paste into zoo/{name}.yaml (replacing its weights block):", file=sys.stderr)
    sys.stdout.write(yaml.safe_dump(block, sort_keys=False, allow_unicode=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
