"""The benchmark scripts' worker call: a job run by the calling script in a fresh process.

A fresh process per measurement keeps each peak memory its own. The script runs
`SCRIPT --worker JSON` and prints the worker's result as JSON on its last line.
"""

from __future__ import annotations

import json
import subprocess
import sys


def run_worker(script: str, job: dict, label: str, env: dict | None = None) -> dict:
    """`python SCRIPT --worker JSON(job)` → the JSON on its last line; a `RuntimeError`
    with the end of its stderr when it fails (`label` names the job)."""
    done = subprocess.run(
        [sys.executable, script, "--worker", json.dumps(job)],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    if done.returncode != 0:
        raise RuntimeError(f"worker failed for {label}:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])
