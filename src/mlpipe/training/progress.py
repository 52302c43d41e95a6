"""Where a run stands: epochs done, metric rows, the best epoch, and the running sums of the current epoch."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass
class Progress:
    """Where a run stands; saved in every checkpoint."""

    epoch: int = 0  # epochs completed
    step: int = 0  # steps completed within the current epoch
    rows: list = field(default_factory=list)  # one metrics row per completed epoch
    best_val_acc: float = -1.0
    best_val_loss: float = float("inf")
    best_epoch: int = 0
    train_seconds: float = 0.0
    finished: bool = False
    version: str = ""  # the finished version's id in the history store (mlpipe.history), set when it finishes

    @property
    def started(self) -> bool:
        """Whether any step has been trained (so this is a resumed run)."""
        return self.epoch > 0 or self.step > 0

    def improves(self, val_acc: float, val_loss: float) -> bool:
        """Higher validation accuracy, or equal accuracy and lower loss (small validation sets tie on accuracy)."""
        return (val_acc, -val_loss) > (self.best_val_acc, -self.best_val_loss)

    def complete_epoch(self, row: dict, epochs: int) -> None:
        self.rows.append(row)
        self.epoch, self.step = row["epoch"], 0
        self.finished = self.epoch == epochs


class EpochSums:
    """Per-step sums of one epoch, kept on the device so that no step waits for the GPU.

    One (3, steps) float64 table, one row per quantity, so that ranks add theirs up in one collective.
    """

    LOSS, CORRECT, COUNT = 0, 1, 2  # rows: loss x examples, correct predictions, examples

    def __init__(self, steps: int, device: torch.device, saved: torch.Tensor | None = None):
        self.table = torch.zeros(3, steps, dtype=torch.float64, device=device)
        if saved is not None:  # the sums of an epoch interrupted part way, as checkpointed
            self.table.copy_(saved.to(device))

    def add(self, step: int, loss: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> None:
        self.table[self.LOSS, step] = loss * len(labels)
        self.table[self.CORRECT, step] = (logits.argmax(1) == labels).sum()
        self.table[self.COUNT, step] = len(labels)

    def check_finite(self, epoch: int, steps_done: int) -> None:
        """Raise :class:`NonFiniteLossError` naming the first step whose loss is NaN or infinite."""
        losses, counts = self.table[self.LOSS, :steps_done], self.table[self.COUNT, :steps_done]
        finite = torch.isfinite(losses) | (counts == 0)
        if not bool(finite.all()):
            step = int((~finite).nonzero()[0])
            steps = self.table.shape[1]
            raise NonFiniteLossError(
                f"training loss is {losses[step].item()} at epoch {epoch + 1}, step {step + 1} "
                f"(global step {epoch * steps + step + 1}); lower train.lr or use train.precision: fp32"
            )

    def totals(self) -> torch.Tensor:
        """Sums over the steps: (loss x examples, correct, examples)."""
        return self.table.sum(dim=1)
