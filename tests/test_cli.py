"""The `del` command as a user meets it: output formats, exit codes, one-line errors."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from delcli import __version__
from delcli.cli.app import main

from helpers import write_database, write_results

EXAMPLE = Path(__file__).parent.parent / "examples" / "unav100_test_predictions.json.gz"


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def small_files(tmp_path):
    gt = write_database(tmp_path / "gt.json", [("v1", 0, 10, "a"), ("v2", 0, 10, "b")])
    preds = write_results(tmp_path / "p.json", [("v1", 0, 10, "a", 0.9), ("v2", 30, 40, "b", 0.8)])
    return gt, preds


def test_version_prints_the_package_version(capsys):
    assert run(capsys, "--version") == (0, f"del {__version__}\n", "")


def test_eval_prints_a_table_of_the_example_predictions(capsys):
    code, out, _ = run(capsys, "eval", "--dataset", "unav100", "--predictions", str(EXAMPLE))
    assert code == 0
    assert "UnAV-100 · test split · mAP (%)" in out
    assert "0.5*" in out and "0.1*" not in out  # the paper's columns are marked
    assert "avg" in out


def test_eval_json_is_machine_readable_and_matches_the_table(capsys):
    code, out, _ = run(capsys, "eval", "-d", "unav100", "-p", str(EXAMPLE), "--format", "json")
    assert code == 0
    report = json.loads(out)
    assert report["tious"] == pytest.approx([0.1 * i for i in range(1, 10)])
    assert report["average_map"] == pytest.approx(sum(report["map"].values()) / 9)
    _, table, _ = run(capsys, "eval", "-d", "unav100", "-p", str(EXAMPLE))
    assert f"{report['average_map'] * 100:.2f}" in table


def test_eval_csv_has_a_map_row_and_one_row_per_class(capsys, small_files):
    gt, preds = small_files
    code, out, _ = run(
        capsys,
        "eval",
        "-g",
        str(gt),
        "-p",
        str(preds),
        "--split",
        "test",
        "--tiou",
        "0.5",
        "--per-class",
        "--format",
        "csv",
    )
    assert code == 0
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["class", "0.5", "avg"]
    assert [r[0] for r in rows[1:]] == ["mAP", "a", "b"]
    assert [float(r[1]) for r in rows[1:]] == [0.5, 1.0, 0.0]


def test_notes_go_to_stderr_and_data_to_stdout(capsys, small_files, tmp_path):
    gt, _ = small_files
    preds = write_results(tmp_path / "q.json", [("v1", 0, 10, "a", 0.9)])
    code, out, err = run(
        capsys, "eval", "-g", str(gt), "-p", str(preds), "-s", "test", "-f", "json"
    )
    assert code == 0
    json.loads(out)
    assert "1 of 2 videos have no predictions" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["eval", "-d", "kinetics", "-p", "x.json"], "unknown dataset 'kinetics' (choose from"),
        (["eval", "-d", "unav100"], "--predictions FILE is required"),
        (["eval", "-p", "x.json"], "give --ground-truth FILE, or --dataset NAME"),
        (["eval", "-d", "unav100", "-p", "absent.json"], "absent.json: no such file"),
        (["eval", "-d", "unav100", "-p", "x.json", "--tiou", "0.5:abc"], "--tiou '0.5:abc'"),
        (  # ten million thresholds: refused at once, not computed for minutes
            ["eval", "-d", "unav100", "-p", "x.json", "--tiou", "0:1:0.0000001"],
            "gives 10,000,001 thresholds; at most 1,000",
        ),
        (["eval", "-d", "unav100", "-p", "x.json", "--tiou", "0.1:inf:0.1"], "at most 1,000"),
        (["eval", "-d", "unav100", "-p", "x.json", "--format", "xml"], "'xml' is not one of"),
        (["eval", "--no-such-option"], "No such option"),
    ],
)
def test_bad_usage_is_one_line_on_stderr_with_exit_code_2(capsys, args, message):
    code, out, err = run(capsys, *args)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("del: error: ")
    assert message in err


def test_bad_input_file_is_one_line_with_exit_code_2(capsys, tmp_path, small_files):
    gt, _ = small_files
    broken = tmp_path / "broken.json"
    broken.write_text('{"results": {"v1": [{"segment": [4, 1], "label": "a", "score": 1}]}}')
    code, out, err = run(capsys, "eval", "-g", str(gt), "-p", str(broken), "-s", "test")
    assert (code, out) == (2, "")
    assert (
        err == f"del: error: {broken}: results['v1'][0] has a segment that ends before it "
        "starts (segment [4, 1], score 1)\n"
    )


def test_debug_shows_the_traceback_and_keeps_the_exit_code(capsys):
    code, _, err = run(capsys, "--debug", "eval", "-d", "nope", "-p", "x.json")
    assert code == 2
    assert "Traceback (most recent call last)" in err and "ConfigError" in err
    assert err.splitlines()[-1].startswith("del: error: unknown dataset 'nope'")


def test_del_alone_prints_the_help_and_no_empty_error(capsys):
    code, out, err = run(capsys)
    assert code == 2
    assert "Usage" in out + err and "del: error" not in out + err


def test_a_bad_choice_does_not_leak_validator_wording(capsys):
    code, _, err = run(capsys, "eval", "-d", "unav100", "-p", "x.json", "--format", "xml")
    assert code == 2 and "Value error" not in err
    assert "'xml' is not one of 'table', 'json', 'csv'" in err


def test_a_long_note_is_one_line_on_a_non_terminal_stderr(capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("COLUMNS", raising=False)
    gt = write_database(tmp_path / "gt.json", [("v1", 0, 10, "a")])
    preds = write_results(tmp_path / "p.json", [("elsewhere", 0, 10, "a", 0.9)])
    code, _, err = run(capsys, "eval", "-g", str(gt), "-p", str(preds), "-s", "test")
    assert code == 0
    (line,) = [line for line in err.splitlines() if "outside split" in line]
    assert len(line) > 80 and line.endswith("as the official scorer does)")


@pytest.mark.parametrize("output_format", ["table", "json", "csv"])
def test_a_closed_stdout_pipe_exits_0_silently_in_every_format(output_format):
    # the reader is gone before del writes: every write meets a closed pipe
    command = [sys.executable, "-m", "delcli.cli.app", "eval", "-d", "unav100"]
    command += ["-p", str(EXAMPLE), "--per-class", "--format", output_format]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()
    err = process.stderr.read().decode()
    assert process.wait(timeout=120) == 0
    assert "error" not in err and "Traceback" not in err


def test_the_installed_console_script_runs():
    script = Path(sys.executable).with_name("del")
    done = subprocess.run(
        [str(script), "eval", "-d", "thumos14", "-p", "missing.csv"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr == "del: error: missing.csv: no such file\n"


def test_a_reader_that_leaves_early_is_not_a_failure():
    script = Path(sys.executable).with_name("del")
    process = subprocess.Popen(
        [str(script), "eval", "-d", "unav100", "-p", str(EXAMPLE), "--per-class"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    process.stdout.readline()
    process.stdout.close()  # like `| head -1`
    assert process.wait(timeout=60) == 0
    assert b"Traceback" not in process.stderr.read()
