"""Learning-rate schedule and run length of the reference trainer: constant, then linear decay per epoch."""

from __future__ import annotations

import torch


def lr_at(epoch: int, lr0: float, lr_final: float, epochs_no_decay: int, epochs_decay: int) -> float:
    """Learning rate used during ``epoch`` (0-indexed).

    The reference (impersonator train.py) trains epochs 1..N and, at the end of every epoch
    ``i > nepochs_no_decay``, subtracts ``(lr0 - lr_final) / nepochs_decay``. So 0-indexed
    epoch ``e`` runs at ``lr0 - max(0, e - epochs_no_decay) * delta``: ``lr0`` for the first
    ``epochs_no_decay + 1`` epochs, ``lr_final`` from epoch ``epochs_no_decay + epochs_decay`` on
    (one past the reference's last epoch; longer runs stay there). With ``epochs_decay == 0``
    the rate drops to ``lr_final`` right after the constant phase.
    """
    if epoch < 0:
        raise ValueError(f"epoch must be >= 0, got {epoch}")
    decayed_epochs = max(0, epoch - epochs_no_decay)
    if epochs_decay == 0:
        return lr0 if decayed_epochs == 0 else lr_final
    if decayed_epochs >= epochs_decay:
        return lr_final
    return lr0 - decayed_epochs * (lr0 - lr_final) / epochs_decay


def iters_per_epoch(configured: int | None, dataset_len: int, batch_size: int) -> int:
    """``configured`` when set, else the reference formula ``len(dataset) // batch`` (at least 1)."""
    if configured is not None:
        return int(configured)
    return max(1, dataset_len // batch_size)


def total_steps(max_steps: int | None, total_epochs: int, epoch_len: int) -> int:
    """``max_steps`` when set, else ``total_epochs * epoch_len`` (the reference run length)."""
    return int(max_steps) if max_steps is not None else total_epochs * epoch_len


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
