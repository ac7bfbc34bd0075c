"""The packaged demo: the README's main job, offline."""

from __future__ import annotations

import json

from delcli.cli.app import main
from delcli.data.formats import read_annotations
from delcli.resources import resource_path


def test_the_demo_model_finds_the_demo_videos_events(capsys, tmp_path):
    plot = tmp_path / "timeline.png"
    assert main(["predict", "--demo", "--format", "json", "--plot", str(plot)]) == 0
    [video] = json.loads(capsys.readouterr().out)
    truth = read_annotations(resource_path("demo/demo_annotations.json"))
    found = 0
    for (start, end), label in zip(truth.segments, truth.labels, strict=True):
        for event in video["events"]:
            inter = min(end, event["end"]) - max(start, event["start"])
            union = max(end, event["end"]) - min(start, event["start"])
            if event["label"] == truth.classes[label] and inter / union >= 0.5:
                found += 1
                break
    assert found >= truth.num_events - 1  # the demo model's test mAP is 93.6 (README)
    assert plot.read_bytes().startswith(b"\x89PNG")
