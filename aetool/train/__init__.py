"""Training (needs the ``train`` extra): configuration, data, the one loop, and the run folder."""

from aetool.train.config import TrainConfig
from aetool.train.loop import TrainResult, train
from aetool.train.run import Run, RunFolder, load_run

__all__ = ["Run", "RunFolder", "TrainConfig", "TrainResult", "load_run", "train"]
