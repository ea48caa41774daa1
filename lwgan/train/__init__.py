"""The LWGAN training loop (no Ray, no MLflow): ``Trainer(cfg, out_dir, callbacks).fit() -> TrainResult``."""

from lwgan.train.callbacks import Callback, CallbackList, TrainResult
from lwgan.train.schedule import lr_at
from lwgan.train.trainer import Trainer, checkpoint_path

__all__ = ["Callback", "CallbackList", "TrainResult", "Trainer", "checkpoint_path", "lr_at"]
