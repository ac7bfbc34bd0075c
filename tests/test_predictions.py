"""Reading detections: both formats, and a clear error for every kind of bad input."""

from __future__ import annotations

import gzip
import json

import pytest

from delcli.errors import DataError
from delcli.evaluation.predictions import read_predictions

from helpers import write_results


def test_results_json_and_csv_read_alike(tmp_path):
    rows = [("v1", 0.0, 10.0, "a", 0.9), ("v2", 1.5, 2.5, "b", 0.1), ("v1", 3.0, 4.0, "b", 0.5)]
    json_path = write_results(tmp_path / "p.json", rows)
    csv_path = tmp_path / "p.csv"
    csv_path.write_text(
        "video,start,end,label,score\n"
        + "".join(f"{v},{s},{e},{lab},{sc}\n" for v, s, e, lab, sc in rows)
    )

    def as_rows(p):
        return sorted(
            (p.videos[v], *seg, str(p.label_names[lab]), score)
            for v, seg, lab, score in zip(
                p.video, p.segments.tolist(), p.label, p.scores, strict=True
            )
        )

    assert (
        as_rows(read_predictions(json_path)) == as_rows(read_predictions(csv_path)) == sorted(rows)
    )


def test_gzipped_results_are_read(tmp_path):
    plain = write_results(tmp_path / "p.json", [("v1", 0.0, 1.0, "a", 0.5)])
    packed = tmp_path / "p.json.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    assert len(read_predictions(packed)) == 1


def _results(entries) -> str:
    return json.dumps({"results": {"vid": entries}})


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"results": {"vid": [', "not valid JSON"),
        ('{"version": 1}', "no top-level 'results' key"),
        ('{"results": []}', "'results' must map video ids"),
        ('{"results": {}}', "holds no predictions"),
        (_results([{"segment": [1, 2], "label": "a"}]), r"results\['vid'\]\[0\] has no 'score'"),
        (_results([{"segment": [1, 2, 3], "label": "a", "score": 1}]), "must be \\[start, end\\]"),
        (_results([{"segment": [5, 2], "label": "a", "score": 1}]), "ends before it starts"),
        (
            _results(
                [
                    {"segment": [1, 2], "label": "a", "score": 0.3},
                    {"segment": [1, 2], "label": "a", "score": float("nan")},
                ]
            ),
            r"results\['vid'\]\[1\] has a score that is not a finite number",
        ),
        (_results([{"segment": ["x", 2], "label": "a", "score": 1}]), "non-numeric start 'x'"),
        (_results([{"segment": [1, 2], "label": None, "score": 1}]), "must be a class name"),
        (  # equal to the class id 1 as a key, but not a class id
            _results(
                [
                    {"segment": [1, 2], "label": 1, "score": 1},
                    {"segment": [1, 2], "label": True, "score": 1},
                ]
            ),
            r"\[1\] label True must be a class name",
        ),
        (
            _results(
                [
                    {"segment": [1, 2], "label": 1, "score": 1},
                    {"segment": [1, 2], "label": 1.0, "score": 1},
                ]
            ),
            r"\[1\] label 1.0 must be a class name",
        ),
        (_results([{"segment": [1, 2], "label": ["a"], "score": 1}]), "must be a class name"),
        # integers beyond the float range (valid JSON) are refused, not an OverflowError
        (_results([{"segment": [0, 10**400], "label": "a", "score": 1}]), "non-finite segment"),
        (_results([{"segment": [-(10**400), 1], "label": "a", "score": 1}]), "non-finite"),
        (_results([{"segment": [0, 1], "label": "a", "score": 10**400}]), "not a finite number"),
        (_results([{"segment": [0, "x"], "label": "a", "score": 10**400}]), "non-numeric end"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),  # RecursionError in json
    ],
)
def test_bad_predictions_give_one_clear_error(tmp_path, content, message):
    path = tmp_path / "p.json"
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        read_predictions(path)


def test_csv_without_required_columns_names_them(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("video,begin,end,label,score\nv,1,2,a,0.5\n")
    with pytest.raises(DataError, match="lacks column\\(s\\) start"):
        read_predictions(path)


def test_csv_errors_name_the_row(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("video,start,end,label,score\nv,1,2,a,0.5\nv,1,2,a,nan\n")
    with pytest.raises(DataError, match="row 3 has a score that is not a finite number"):
        read_predictions(path)
