"""Training configuration: one dataclass, defaults from the model registry, overrides from the command line."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from aetool.models import get_spec
from aetool.models.dense import PIXELS
from aetool.runtime.noise import NOISE_KINDS, check_level

DATASETS = ("mnist", "fashion-mnist")
LOSSES = ("mse", "bce")


@dataclass
class TrainConfig:
    model: str
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    loss: str = "mse"
    l1: float = 0.0
    noise: float = 0.0
    noise_kind: str = "gaussian"
    components: int | None = None
    seed: int = 0
    device: str = "auto"
    dataset: str = "mnist"
    data_dir: str | None = None
    limit: int | None = None
    out: str | None = None

    def __post_init__(self) -> None:
        if self.data_dir:  # recorded in the run: absolute, so an export from elsewhere finds the same folder
            self.data_dir = str(Path(self.data_dir).expanduser().absolute())
        if self.dataset not in DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}; choose one of {', '.join(DATASETS)}")
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; choose one of {', '.join(LOSSES)}")
        if self.noise_kind not in NOISE_KINDS:
            raise ValueError(f"unknown noise kind {self.noise_kind!r}; choose one of {', '.join(NOISE_KINDS)}")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError(f"unknown device {self.device!r}; choose auto, cpu or cuda")
        if get_spec(self.model).kind == "pca":
            unused = [f"--{name}" for name in ("epochs", "l1", "noise") if getattr(self, name)]
            if unused:
                raise ValueError(
                    f"{', '.join(unused)} does not apply to pca: it is fitted in closed form on clean images"
                )
        elif self.epochs < 1:
            raise ValueError(f"--epochs must be at least 1, got {self.epochs}")
        elif self.components is not None:
            raise ValueError("--components applies to the pca model only")
        at_least = {"batch_size": 1, "seed": 0, "limit": 1, "components": 1}
        for name, low in at_least.items():
            value = getattr(self, name)
            if value is not None and value < low:
                raise ValueError(f"--{name.replace('_', '-')} must be at least {low}, got {value}")
        if self.components is not None and self.components > PIXELS:
            raise ValueError(f"--components must be at most {PIXELS} (the pixels of an image), got {self.components}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"--lr must be a positive number, got {self.lr}")
        for name in ("l1", "noise"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise ValueError(f"--{name} must be 0 or more, got {getattr(self, name)}")
        try:
            check_level(self.noise, self.noise_kind)
        except ValueError as err:
            raise ValueError(f"--noise: {err}") from None

    @property
    def arch(self) -> dict[str, Any]:
        """Constructor arguments: the registry's, with command-line overrides."""
        arch = dict(get_spec(self.model).arch)
        if self.components is not None:
            arch["components"] = self.components
        return arch

    @classmethod
    def for_model(cls, model: str, **overrides: Any) -> TrainConfig:
        """The registry's training defaults for ``model``, then ``overrides`` (``None`` values are ignored)."""
        known = {f.name for f in fields(cls)}
        given = {k: v for k, v in overrides.items() if v is not None}
        if get_spec(model).kind == "pca":
            unused = [f"--{name.replace('_', '-')}" for name in ("lr", "loss", "batch_size") if name in given]
            if unused:
                raise ValueError(f"{', '.join(unused)} does not apply to pca: it is fitted in closed form")
        settings = {**get_spec(model).train, **given}
        unknown = set(settings) - known
        if unknown:
            raise ValueError(f"unknown training settings: {', '.join(sorted(unknown))}")
        return cls(model=model, **settings)

    @property
    def run_dir(self) -> Path:
        """Where the run is written: ``out``, else ``runs/MODEL``."""
        return Path(self.out or Path("runs") / self.model)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
