"""The one model registry: name → constructor, architecture defaults and training defaults."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

from aetool.errors import RegistryError
from aetool.models.base import Autoencoder
from aetool.models.conv import ConvAE, DnCNN
from aetool.models.dense import PCA, DenseAE
from aetool.names import REPORT_MODELS

# The blind denoiser's training noise (runtime.noise.Noise's text), drawn per image: clean a tenth of the time,
# Gaussian σ up to 0.6 half the time, salt-and-pepper up to 0.3 and masking up to 0.5 a fifth each.
BLIND_NOISE = "gaussian=0@0.1,gaussian=0:0.6@0.5,salt-pepper=0:0.3@0.2,mask=0:0.5@0.2"
KINDS: dict[type[Autoencoder], str] = {PCA: "pca", DenseAE: "dense", ConvAE: "conv", DnCNN: "conv"}
# The training defaults a registry entry may set (train.config.TrainConfig's fields of the same names).
TRAIN_SETTINGS = ("epochs", "batch_size", "lr", "loss", "l1", "noise", "noise_mix", "augment")


@dataclass(frozen=True)
class ModelSpec:
    """How to build one registry model and the training settings it gets by default."""

    name: str
    summary: str
    build: type[Autoencoder]
    arch: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    detector: bool = False  # training ends with a calibrated anomaly detector, not a plain model file

    def __post_init__(self) -> None:
        """Refuse, when the registry is built, what training would only stumble on later: training settings it
        does not know and constructor arguments ``build`` does not take (``channels`` always, ``size`` for a model
        of one fixed size); raises ``RegistryError`` (a ``TypeError``)."""
        unknown = sorted(set(self.train) - set(TRAIN_SETTINGS))
        if unknown:
            raise RegistryError(
                f"model {self.name!r}: unknown training settings {', '.join(unknown)}; known: {', '.join(TRAIN_SETTINGS)}"
            )
        parameters = inspect.signature(self.build).parameters
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
            return
        needed = {*self.arch, "channels", *(("size",) if self.kind != "conv" else ())}
        missing = sorted(needed - set(parameters))
        if missing:
            raise RegistryError(
                f"model {self.name!r}: {self.build.__name__}() takes no {', '.join(missing)} keyword; training passes "
                "the arch settings, the images' channels and, to a model of one fixed size, their size"
            )

    @property
    def kind(self) -> str:
        """``pca``, ``dense`` or ``conv``: what the exporter and the runtime need to know, from ``KINDS`` for
        ``build`` or the nearest class it derives from. Raises ``RegistryError`` (a ``TypeError``) for a class that
        derives from none."""
        for cls in self.build.__mro__:
            if cls in KINDS:
                return KINDS[cls]
        raise RegistryError(
            f"model {self.name!r}: {self.build.__name__} derives from none of {', '.join(c.__name__ for c in KINDS)}; "
            "add it to aetool.models.KINDS: 'dense' (one fixed size) or 'conv' (any size, multiple_of set)"
        )


REGISTRY: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in [
        ModelSpec(
            "pca", "PCA baseline, 30 components, fitted by eigendecomposition", PCA, {"components": 30}, {"epochs": 0}
        ),
        ModelSpec(
            "deep",
            "deep AE 784-512-128-30 (linear 30-unit code), mirrored",
            DenseAE,
            {"hidden": (512, 128), "code": 30, "linear_code": True},
            # test MSE 0.00417 (lr 1e-3: 0.00508 at 30 epochs, 0.00427 at 60; lr 3e-3: 0.00433 at 30)
            {"epochs": 40, "lr": 3e-3, "loss": "bce"},
        ),
        ModelSpec("ae64", "shallow AE, one ReLU hidden layer of 64 units", DenseAE, {"code": 64}),
        ModelSpec("ae128", "shallow AE, one ReLU hidden layer of 128 units", DenseAE, {"code": 128}),
        ModelSpec("ae256", "shallow AE, one ReLU hidden layer of 256 units", DenseAE, {"code": 256}),
        ModelSpec(
            "sparse",
            "sparse AE, overcomplete ReLU hidden layer of 1024 units with an L1 penalty on its activations",
            DenseAE,
            {"code": 1024},
            {"l1": 1e-2},
        ),
        ModelSpec(
            "denoise-dense",
            "the report's denoising AE, one ReLU hidden layer of 256 units, trained on Gaussian noise 0.5",
            DenseAE,
            {"code": 256},
            {"noise": 0.5},
        ),
        ModelSpec(
            "conv-unpool",
            "conv AE 16/16 channels, decoder upsamples by max-unpooling + conv",
            ConvAE,
            {"upsample": "unpool", "widths": (16, 16)},
            # test MSE 0.00089 (lr 3e-3: 0.00130 at 10 epochs, 0.00097 at 20; lr 5e-3: 0.00107 at 10)
            {"lr": 5e-3, "epochs": 14},
        ),
        ModelSpec(
            "conv-unpool-deconv",
            "conv AE 16/16 channels, decoder upsamples by max-unpooling + transposed conv",
            ConvAE,
            {"upsample": "unpool-deconv", "widths": (16, 16)},
            {"lr": 3e-3},
        ),
        ModelSpec(
            "conv-deconv",
            "conv AE 32/32 channels, decoder upsamples by stride-2 transposed conv alone",
            ConvAE,
            {"upsample": "deconv", "widths": (32, 32)},
            {"lr": 3e-3, "loss": "bce"},
        ),
        ModelSpec(
            "dncnn",
            "residual CNN denoiser (DnCNN-style) for your own images: 7 layers of 32 channels at full resolution "
            "predict the noise",
            DnCNN,
            {"depth": 7, "width": 32},
            {"noise": 25 / 255, "batch_size": 32, "epochs": 70, "augment": True},
        ),
        ModelSpec(
            "denoise",
            "blind denoiser for digits and pages: a DnCNN with one half-resolution stage (32 channels, 10 layers) "
            "trained on MNIST over a range of Gaussian, salt-and-pepper and masking noise (and clean digits), so it "
            "needs no noise level",
            DnCNN,
            {"depth": 10, "width": 32, "down": True},
            {"noise_mix": BLIND_NOISE, "epochs": 7},
        ),
        # Chosen on the one-class MNIST and Fashion-MNIST benchmark (README, "Anomaly detection"): the narrow code
        # keeps it from reconstructing what it was not trained on, which wider and convolutional models do.
        ModelSpec(
            "anomaly",
            "anomaly detector: dense AE 784-256-32 (linear 32-unit code), mirrored, 15 epochs on normal images",
            DenseAE,
            {"hidden": (256,), "code": 32, "linear_code": True},
            {"epochs": 15},
            detector=True,
        ),
    ]
}


def get_spec(name: str) -> ModelSpec:
    """The registry entry for ``name``; a ``ValueError`` for an unknown name names the known models (as every
    "unknown X" of aetool does)."""
    if name not in REGISTRY:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def build_model(name: str, **overrides: Any) -> Autoencoder:
    """A fresh model with the registry's architecture, updated by ``overrides``. Raises ``RegistryError`` (a
    ``TypeError``) for a convolutional model (kind ``conv``) that leaves ``multiple_of`` unset (1 means any size)."""
    spec = get_spec(name)
    net = spec.build(**{**spec.arch, **overrides})
    if spec.kind == "conv" and net.multiple_of is None:
        raise RegistryError(f"model {name!r}: a convolutional model sets multiple_of (1 for a model of any size)")
    return net


__all__ = [
    "PCA",
    "REGISTRY",
    "REPORT_MODELS",
    "Autoencoder",
    "ConvAE",
    "DenseAE",
    "DnCNN",
    "ModelSpec",
    "build_model",
    "get_spec",
]
