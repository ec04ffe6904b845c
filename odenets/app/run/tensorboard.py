"""``--tensorboard``: a run's metrics as TensorBoard event files, in ``<out>/tensorboard``.

Written beside the JSONL and CSV logs, not instead of them: the training loss and
accuracy every ``every`` optimizer steps (their means over those steps, at the last
one's step number), and per epoch the test loss and accuracy, the epoch's training
loss and accuracy, the learning rate and every learned k_n (``k/<net>.<step>``, the
mean over the channels for per-channel k), all against the optimizer step; the run's
settings as text. ``odenets ablate`` gives every run its own folder, so
``tensorboard --logdir <study>/runs`` shows a study as one view, a run a line.
TensorBoard is an optional extra (``pip install -e '.[tensorboard]'``).
"""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import UsageError

FOLDER = "tensorboard"
INSTALL = "pip install tensorboard (from a checkout: pip install -e '.[tensorboard]')"


def require() -> None:
    """Raise a UsageError saying how to install TensorBoard, unless it is installed."""
    try:
        import tensorboard  # noqa: F401
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        raise UsageError(f"--tensorboard writes TensorBoard event files, which needs the tensorboard package: "
                         f"{INSTALL}; or leave --tensorboard out") from None


class Board:
    """The event files of one run in ``out/tensorboard``, its ``settings`` written as text."""

    def __init__(self, out: Path, settings: dict, every: int = 10):
        require()
        from torch.utils.tensorboard import SummaryWriter

        self.writer, self.every = SummaryWriter(str(out / FOLDER)), every
        self.sums = [0.0, 0.0, 0.0, 0]  # loss, correct, images, steps since the last write
        text = json.dumps(settings, indent=2, sort_keys=True, default=str)
        self.writer.add_text("settings", "    " + text.replace("\n", "\n    "))  # Markdown: a code block

    def step(self, step: int, loss: float, correct: float, count: float) -> None:
        """One optimizer step's summed loss and correct answers over ``count`` images."""
        for i, value in enumerate((loss, correct, count, 1)):
            self.sums[i] += value
        if self.sums[3] >= self.every:
            loss, correct, count, _ = self.sums
            self.writer.add_scalar("train/loss", loss / max(count, 1), step)
            self.writer.add_scalar("train/acc", correct / max(count, 1), step)
            self.sums = [0.0, 0.0, 0.0, 0]

    def epoch(self, row: dict) -> None:
        """An epoch's row of the history (:mod:`metrics`)."""
        step = row["step"]
        for key in ("test_loss", "test_acc", "train_loss", "train_acc"):
            split, what = key.split("_")
            self.writer.add_scalar(f"{split}/{'epoch_' if split == 'train' else ''}{what}", row[key], step)
        self.writer.add_scalar("lr", row["lr"], step)
        for name, k in row.get("k", {}).items():
            self.writer.add_scalar(f"k/{name}", sum(k) / len(k) if isinstance(k, list) else k, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
