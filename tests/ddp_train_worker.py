"""`del train ARGS…` as one torchrun worker (test helper).

Registers the train command on a bare Typer app, so the test does not depend
on the main app's registration; the command itself ends the process with
`os._exit` under torchrun.
"""

from __future__ import annotations

import sys

import torch
import typer

from delcli.cli import train_cmd

if __name__ == "__main__":
    torch.set_num_threads(1)
    app = typer.Typer(add_completion=False)

    @app.callback()
    def _root() -> None:
        """Test entry point."""

    train_cmd.register(app)
    app(args=["train", *sys.argv[1:]], prog_name="del")
