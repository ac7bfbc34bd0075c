"""Atomic outputs: what `-o PATH` does to whatever is at PATH."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from delcli.cli.predict_output import EventWriter, PredictFormat
from delcli.files import atomic_path
from delcli.inference.video import Event, VideoEvents


def _write(path, text: str) -> None:
    with atomic_path(path) as temporary:
        Path(temporary).write_text(text)


def _leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if ".tmp" in p.name]


def test_a_new_file_appears_whole_and_nothing_else_is_left(tmp_path):
    _write(tmp_path / "out.json", "{}")
    assert (tmp_path / "out.json").read_text() == "{}"
    assert _leftovers(tmp_path) == []


def test_an_error_leaves_the_old_file_and_no_temporary(tmp_path):
    out = tmp_path / "out.json"
    out.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(out) as temporary:
        Path(temporary).write_text("half")
        raise RuntimeError("the writer failed")
    assert out.read_text() == "old"
    assert _leftovers(tmp_path) == []


def test_a_symlink_is_followed_and_stays_a_symlink(tmp_path):
    target = tmp_path / "real" / "results.json"
    target.parent.mkdir()
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    _write(link, "new")
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text() == "new"
    assert _leftovers(tmp_path) == [] and _leftovers(target.parent) == []


def test_a_dangling_symlink_creates_its_target(tmp_path):
    link = tmp_path / "link.json"
    link.symlink_to(tmp_path / "target.json")
    _write(link, "new")
    assert link.is_symlink() and (tmp_path / "target.json").read_text() == "new"


def test_an_existing_file_keeps_its_mode(tmp_path):
    out = tmp_path / "secret.json"
    out.write_text("old")
    out.chmod(0o600)
    _write(out, "new")
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_a_new_file_honours_the_umask(tmp_path):
    previous = os.umask(0o077)
    try:
        _write(tmp_path / "private.json", "x")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "private.json").stat().st_mode) == 0o600


def test_a_fifo_is_written_directly_and_stays_a_fifo(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[str] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()))
    reader.start()
    try:
        _write(fifo, "through the pipe")
    finally:
        if reader.is_alive():  # the writer never opened the FIFO: unblock the reader
            with open(fifo, "w"):
                pass
        reader.join(timeout=10)
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert received == ["through the pipe"]
    assert _leftovers(tmp_path) == []


def test_dash_means_standard_output(capfd):
    _write("-", "to stdout")
    assert capfd.readouterr().out == "to stdout"


def test_a_writer_that_renames_its_own_temporary_file_cannot_replace_a_fifo(tmp_path):
    # safetensors' save_file writes a temporary file and renames it over the name given
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    try:
        with atomic_path(fifo) as temporary:
            own = Path(temporary).with_name(Path(temporary).name + ".own")
            own.write_bytes(b"renamed into place")
            os.replace(own, temporary)
    finally:
        if reader.is_alive():
            with open(fifo, "w"):
                pass
        reader.join(timeout=10)
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert received == [b"renamed into place"]


def test_predict_output_writes_through_a_symlink_with_the_file_mode(tmp_path):
    target = tmp_path / "events.csv"
    target.write_text("")
    target.chmod(0o640)
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    video = VideoEvents("v", "v.mp4", 10.0, [Event(1.0, 2.0, "bark", 0.9)])
    with EventWriter(PredictFormat.csv, link, None, "demo") as writer:
        writer.write(video)
    assert link.is_symlink()
    assert target.read_text() == "video,start,end,label,score\nv,1.0,2.0,bark,0.9\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert _leftovers(tmp_path) == []


def test_predict_output_dash_is_stdout(capsys):
    video = VideoEvents("v", "v.mp4", 10.0, [Event(1.0, 2.0, "bark", 0.9)])
    with EventWriter(PredictFormat.jsonl, Path("-"), None, "demo") as writer:
        writer.write(video)
    assert '"video": "v"' in capsys.readouterr().out


root_only = pytest.mark.skipif(os.geteuid() != 0, reason="making a device node needs root")


@root_only
def test_a_full_device_is_one_line_exit_1_and_stays_a_device(tmp_path, capsys):
    from delcli.cli.app import main

    full = tmp_path / "full"
    os.mknod(full, 0o666 | stat.S_IFCHR, os.makedev(1, 7))  # a private /dev/full
    assert main(["export", "-m", "demo", "-o", str(full), "-f", "safetensors"]) == 1
    assert capsys.readouterr().err == f"del: error: No space left on device ({full})\n"
    assert stat.S_ISCHR(full.stat().st_mode)
    assert _leftovers(tmp_path) == []


@root_only
def test_a_null_device_takes_the_output_and_stays_a_device(tmp_path):
    from delcli.cli.app import main

    null = tmp_path / "null"
    os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # a private /dev/null
    assert main(["export", "-m", "demo", "-o", str(null), "-f", "safetensors"]) == 0
    assert stat.S_ISCHR(null.stat().st_mode)
