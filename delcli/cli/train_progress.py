"""What both ways of `del train` show and check: the run folder, progress, counts.

`train_cmd` (feature datasets) and `train_videos` (`--videos DIR --labels FILE`)
share these; each imports them from here, neither from the other.
"""

from __future__ import annotations

from pathlib import Path

from delcli.cli.output import progress_bar, stderr_console
from delcli.errors import ConfigError


def check_run_dir(run_dir: Path, resume: bool) -> None:
    """`--out` must be a folder, and an empty one unless the run is resumed."""
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"--out {run_dir}: exists and is not a directory")
    if not resume and run_dir.is_dir() and any(run_dir.iterdir()):
        raise ConfigError(
            f"--out {run_dir} is not empty; pass --resume to continue that run, "
            "or choose another --out"
        )


class TrainProgress:
    """Rich progress on stderr: one bar over all steps, a line per evaluation."""

    def __init__(self, run_dir: Path) -> None:
        self.console = stderr_console()
        self.run_dir = run_dir
        self.bar = progress_bar(status=True, transient=False, console=self.console)
        self.task = None
        self.epochs = 0
        self.speed = ""

    def handle(self, event: dict) -> None:
        kind = event["event"]
        if kind in ("start", "resume"):
            self.epochs = event["epochs"]
            self.console.print(f"[dim]run:[/dim] {self.run_dir}", highlight=False)
            if kind == "resume":
                self.console.print(
                    f"resuming after epoch {event['epoch']} (step {event['step']})",
                    highlight=False,
                )
            self.console.print(
                f"{event['train_videos']} training / {event['val_videos']} validation videos · "
                f"{count(event['epochs'], 'epoch')} × "
                f"{count(event['steps_per_epoch'], 'step')} · "
                f"batch {event['batch_size']} · {count(event['processes'], 'process')} on "
                f"{event['device']}",
                highlight=False,
            )
            self.bar.start()
            self.task = self.bar.add_task(
                self._description(event["epoch"] + 1),
                total=event["total_steps"],
                completed=event["step"],
                status="",
            )
        elif kind == "step" and self.task is not None:
            status = f"loss {event['loss']:.4f} · lr {event['lr']:.2e}{self.speed}"
            self.bar.update(
                self.task,
                completed=event["step"],
                description=self._description(event["epoch"]),
                status=status,
            )
        elif kind in ("train", "epoch"):
            self.speed = f" · {event['videos_per_s']:.1f} videos/s"
        elif kind == "validate" and self.task is not None:
            self.bar.update(self.task, status=f"validating {event['videos']} videos…")
        elif kind == "eval":
            self.bar.update(self.task, status="")
            mark = " [green](best)[/green]" if event["best"] else ""
            self.bar.console.print(
                f"epoch {event['epoch']}: validation avg mAP {100 * event['average_map']:.2f}{mark}"
            )
        elif kind == "note":
            self.bar.console.print(f"[dim]note:[/dim] {event['message']}", highlight=False)

    def _description(self, epoch: int) -> str:
        return f"epoch {epoch}/{self.epochs}"

    def stop(self) -> None:
        if self.task is not None:
            self.bar.stop()
            self.task = None


def count(number: int, noun: str) -> str:
    """`1 epoch`, `2 epochs`, `2 processes`."""
    plural = "es" if noun.endswith("s") else "s"
    return f"{number} {noun}{'' if number == 1 else plural}"
