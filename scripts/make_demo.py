"""Build the offline demo: synthetic videos → `basic` features → a small DEL → package.

Every step is the `del` command a user would run, so the demo exercises the
real path end to end:

1. `del data synth-video WORK --videos N` (mp4s with a known timeline);
2. `del extract WORK/videos/*.mp4 --recipe demo --out WORK/features`;
3. `del train demo` on those features (zoo/demo.yaml);
4. `del eval` of the best weights on the held-out test split;
5. the weights (safetensors, with the recipe inside), one held-out demo video
   and its ground truth are copied into `delcli/resources/demo/`, with a
   README recording the commands and the measured mAP.

    python scripts/make_demo.py [--work data/demo] [--videos 300] [--seed 0] [--jobs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "delcli" / "resources" / "demo"


def run(*command: str, stdout=None) -> None:
    print("+", " ".join(command), file=sys.stderr, flush=True)
    subprocess.run(command, check=True, stdout=stdout)


def atomic_copy(source: Path, target: Path) -> None:
    temporary = target.with_name(target.name + ".tmp")
    shutil.copyfile(source, temporary)
    os.chmod(temporary, 0o644)
    temporary.replace(target)


def record_in_manifest(weights: Path) -> None:
    """Write the packaged weights' sha256 and size into zoo/demo.yaml's weights block."""
    import hashlib
    import re

    manifest = Path(__file__).resolve().parent.parent / "zoo" / "demo.yaml"
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    text = manifest.read_text()
    text = re.sub(r"(?m)^(  sha256: ).*$", rf"\g<1>{digest}", text, count=1)
    text = re.sub(r"(?m)^(  size: ).*$", rf"\g<1>{weights.stat().st_size}", text, count=1)
    manifest.write_text(text)


def showcase(events: list[dict]) -> tuple[bool, int, int]:
    """How much of the task a video shows: (an overlap, kinds of evidence, events)."""
    from delcli.synth.video import CLASSES

    evidence = {c.name: c.evidence for c in CLASSES}
    overlap, reach = False, float("-inf")
    for start, end in sorted(tuple(e["segment"]) for e in events):
        overlap, reach = overlap or start < reach, max(reach, end)
    kinds = len({evidence.get(e["label"]) for e in events})
    return overlap, kinds, len(events)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("data/demo"))
    parser.add_argument("--videos", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2, help="extraction workers")
    args = parser.parse_args()
    tool = str(Path(sys.executable).with_name("del"))
    work, features, run_dir = args.work, args.work / "features", args.work / "run"
    annotations = work / "annotations.json"
    started = time.perf_counter()

    run(tool, "data", "synth-video", str(work), "--videos", str(args.videos), "--seed",
        str(args.seed))  # fmt: skip
    videos = sorted(str(p) for p in (work / "videos").glob("*.mp4"))
    run(tool, "extract", *videos, "--recipe", "demo", "--out", str(features), "--workers",
        str(args.jobs))  # fmt: skip
    data = ["--features", str(features), "--annotations", str(annotations)]
    resume = ["--resume"] if (run_dir / "checkpoint").exists() else []
    run(tool, "train", "demo", *data, "--out", str(run_dir), *resume)
    with open(work / "test_eval.json", "w") as handle:
        run(tool, "eval", "--weights", str(run_dir), *data, "--split", "test", "--format", "json",
            stdout=handle)  # fmt: skip
    report = json.loads((work / "test_eval.json").read_text())

    # The demo video: the held-out test video that shows the most — overlapping events,
    # every kind of evidence (audio, visual, audio-visual), many events.
    database = json.loads(annotations.read_text())["database"]
    test = [v for v, entry in database.items() if entry["subset"] == "test"]
    chosen = max(test, key=lambda v: showcase(database[v]["annotations"]))
    PACKAGE.mkdir(parents=True, exist_ok=True)
    atomic_copy(run_dir / "best.safetensors", PACKAGE / "demo.safetensors")
    record_in_manifest(PACKAGE / "demo.safetensors")
    atomic_copy(work / "videos" / f"{chosen}.mp4", PACKAGE / "demo.mp4")
    classes = json.loads(annotations.read_text())["classes"]
    truth = {"version": "del demo", "classes": classes, "database": {"demo": database[chosen]}}
    (PACKAGE / "demo_annotations.json").write_text(json.dumps(truth, indent=1) + "\n")
    minutes = (time.perf_counter() - started) / 60
    maps = ", ".join(f"{t}: {100 * m:.1f}" for t, m in report["map"].items())
    (PACKAGE / "README.md").write_text(
        f"""# The demo model

Made by `python scripts/make_demo.py --videos {args.videos} --seed {args.seed}` in
{minutes:.0f} minutes on the machine that ran it: {args.videos} synthetic videos
(`del data synth-video`, 8 classes of audio, visual and audio-visual events),
`basic` features (`del extract --recipe demo`), a small DEL (`zoo/demo.yaml`,
`del train demo`).

- `demo.safetensors` — the EMA weights of the best validation epoch, with the
  recipe (and class list) in their metadata;
- `demo.mp4` — held-out test video `{chosen}` ({database[chosen]["duration"]:.1f} s,
  {len(database[chosen]["annotations"])} events), with `demo_annotations.json`, its
  ground truth under the id `demo`.

Held-out test split ({report["counts"]["videos"]} videos,
{report["counts"]["ground_truth"]} events): average mAP over tIoU 0.1:0.9 =
**{100 * report["average_map"]:.1f}** ({maps}).
"""
    )
    print(f"demo packaged in {PACKAGE} · test avg mAP {100 * report['average_map']:.1f}")


if __name__ == "__main__":
    main()
