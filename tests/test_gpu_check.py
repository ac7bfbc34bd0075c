"""scripts/gpu_check.sh: its dry run lists every GPU check and works on a CPU machine."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_check.sh"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def run(*args: str) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "PYTHON": sys.executable}
    return subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=60, env=env
    )


def test_the_dry_run_lists_every_check_within_ten_minutes():
    done = run("--dry-run")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for check in ("-m cuda", "--dtype bf16 --batch 16 --dim 512", "--size 1280x720",
                  "--rate", "basic", "vggish", "i3d", "predict", "--provider cuda"):  # fmt: skip
        assert check in out, check
    total = int(re.search(r"at most (\d+) s in all", out).group(1))
    limits = [int(x) for x in re.findall(r"\(≤\s*(\d+) s\)", out)]
    assert sum(limits) == total < 600


def test_an_unknown_argument_is_refused_with_exit_2():
    done = run("--fast")
    assert done.returncode == 2
    assert (
        done.stderr.strip() == "gpu_check.sh: unknown argument '--fast' (use --dry-run or --help)"
    )


@pytest.mark.parametrize(
    ("script", "options"),
    [
        ("bench_model.py", ["--device", "--dtype", "--batch", "--dim", "--settings", "--threads"]),
        (
            "bench_predict.py",
            ["--make-video", "--seconds", "--size", "--fps", "--rate", "--device"],
        ),
        ("bench_export.py", ["--provider", "--geometries", "--repeats"]),
    ],
)
def test_the_scripts_it_calls_take_the_options_it_passes(script, options):
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / script), "--help"],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for option in options:
        assert option in done.stdout, (script, option)
