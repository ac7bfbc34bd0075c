"""An annotation JSON (ActivityNet form, as `del data synth-video` writes it) as the
label CSV a user of `del train --videos --labels` would write by hand:

    python scripts/labels_csv.py my_videos/annotations.json labels.csv

One row per event, `video,start,end,label`, the video named by its file (`VIDEO.mp4`),
no split column (so `del train` chooses the split). Written atomically.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("annotations", type=Path)
    parser.add_argument("csv", type=Path)
    parser.add_argument("--suffix", default=".mp4", help="the videos' file extension")
    args = parser.parse_args()
    database = json.loads(args.annotations.read_text(encoding="utf-8"))["database"]
    temporary = args.csv.with_name(f".{args.csv.name}.tmp")
    with open(temporary, "w", newline="", encoding="utf-8") as handle:
        rows = csv.writer(handle)
        rows.writerow(["video", "start", "end", "label"])
        for video, entry in database.items():
            for event in entry["annotations"]:
                rows.writerow([f"{video}{args.suffix}", *event["segment"], event["label"]])
    os.replace(temporary, args.csv)


if __name__ == "__main__":
    main()
