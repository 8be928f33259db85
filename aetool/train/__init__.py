"""Training (needs the ``train`` extra): data, the shared loop, run folders."""

from aetool.train.config import TrainConfig
from aetool.train.loop import TrainResult, train
from aetool.train.run import Run, load_run

__all__ = ["Run", "TrainConfig", "TrainResult", "load_run", "train"]
