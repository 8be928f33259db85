"""Training configuration: one dataclass, defaults from the model registry, overrides from the command line."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from aetool.models import get_spec
from aetool.runtime.noise import NOISE_KINDS

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
        if self.dataset not in DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}; choose one of {', '.join(DATASETS)}")
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; choose one of {', '.join(LOSSES)}")
        if self.noise_kind not in NOISE_KINDS:
            raise ValueError(f"unknown noise kind {self.noise_kind!r}; choose one of {', '.join(NOISE_KINDS)}")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError(f"unknown device {self.device!r}; choose auto, cpu or cuda")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < (0 if name == "epochs" else 1):
                raise ValueError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        if self.components is not None and get_spec(self.model).kind != "pca":
            raise ValueError("--components applies to the pca model only")

    @property
    def arch(self) -> dict[str, Any]:
        """Constructor arguments: the registry's, with command-line overrides."""
        arch = dict(get_spec(self.model).arch)
        if self.components is not None:
            arch["components"] = self.components
        return arch

    @classmethod
    def for_model(cls, model: str, **overrides: Any) -> "TrainConfig":
        """The registry's training defaults for ``model``, then ``overrides`` (``None`` values are ignored)."""
        known = {f.name for f in fields(cls)}
        settings = {**get_spec(model).train, **{k: v for k, v in overrides.items() if v is not None}}
        unknown = set(settings) - known
        if unknown:
            raise ValueError(f"unknown training settings: {', '.join(sorted(unknown))}")
        return cls(model=model, **settings)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
