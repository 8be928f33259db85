"""Fully connected models of the report: PCA, the deep AE, shallow/sparse/denoising AEs.

Each takes images of one fixed size: ``channels`` × ``size`` (28×28 grey by default, MNIST's), flattened.
"""

from __future__ import annotations

import itertools
from math import prod

import torch
from torch import nn

from aetool.models.base import Autoencoder

MNIST_SIZE = (28, 28)


class PCA(Autoencoder):
    """PCA as a linear autoencoder: code = (x - mean) @ basisᵀ, output = code @ basis + mean.

    Fitted in closed form (eigenvectors of the training covariance), never by gradient steps.
    """

    mean: torch.Tensor
    basis: torch.Tensor

    def __init__(self, components: int = 30, channels: int = 1, size: tuple[int, int] = MNIST_SIZE) -> None:
        super().__init__()
        self.components, self.channels, self.size = components, channels, size
        self.shape = (channels, *size)
        self.register_buffer("mean", torch.zeros(prod(self.shape)))
        self.register_buffer("basis", torch.zeros(components, prod(self.shape)))

    @torch.no_grad()
    def fit(self, images: torch.Tensor) -> None:
        """Set mean and the top principal directions from N×C×H×W training images in [0, 1]: the eigenvectors of
        their D×D covariance (D = C·H·W), or, for fewer images than D, the right singular vectors of the N×D centred
        images, the same directions: the D×D float64 covariance of 128×128 colour images is 19 GB, and a trial's
        eigendecomposition of one took minutes where the SVD took milliseconds (trial 94). Raises ``ValueError`` for more
        components than the images span (n images, n − 1 directions)."""
        flat = images.reshape(len(images), -1).double()
        if self.components > min(len(flat) - 1, flat.shape[1]):  # n images centred on their mean span n − 1
            raise ValueError(
                f"PCA of {self.components} components needs at least {self.components + 1} images of at least "
                f"{self.components} pixels; got {len(flat)} of {flat.shape[1]}"
            )
        mean = flat.mean(0)
        centred = flat - mean
        if len(flat) < flat.shape[1]:
            directions = torch.linalg.svd(centred, full_matrices=False)[2][: self.components]  # descending
        else:
            covariance = centred.T @ centred / (len(flat) - 1)
            directions = torch.linalg.eigh(covariance)[1][:, -self.components :].flip(1).T  # eigh: ascending
        self.mean.copy_(mean.float())
        self.basis.copy_(directions.float())

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The coordinates (N×components) of images N×C×H×W on the principal components, around the mean image."""
        return (x.flatten(1) - self.mean) @ self.basis.T

    def decode(self, code: torch.Tensor, *, clamp: bool = True) -> torch.Tensor:
        """Back to pixels; clamped to the valid range [0, 1] unless ``clamp=False`` (the pure linear PCA)."""
        pixels = code @ self.basis + self.mean
        pixels = pixels.reshape(-1, *self.shape)  # before the clamp, as DenseAE.decode reshapes before its sigmoid
        return pixels.clamp(0, 1) if clamp else pixels


def _mlp(sizes: list[int], last_activation: nn.Module | None) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    if last_activation is not None:
        layers.append(last_activation)
    return nn.Sequential(*layers)


class DenseAE(Autoencoder):
    """Mirrored MLP autoencoder C·H·W → hidden… → code → …hidden → C·H·W, ReLU inside, a sigmoid output.

    ``linear_code=True`` leaves the code layer without activation (the deep AE's 30-unit code, as in
    Hinton & Salakhutdinov 2006); otherwise the code is a ReLU layer whose activations the sparse AE penalises.
    """

    def __init__(
        self,
        hidden: tuple[int, ...] = (),
        code: int = 64,
        linear_code: bool = False,
        *,
        channels: int = 1,
        size: tuple[int, int] = MNIST_SIZE,
    ) -> None:
        super().__init__()
        self.channels, self.size = channels, size
        self.shape = (channels, *size)
        sizes = [prod(self.shape), *hidden, code]
        self.encoder = _mlp(sizes, None if linear_code else nn.ReLU())
        self.decoder = _mlp(sizes[::-1], None)  # logits: decode applies the sigmoid

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The code (N×code) of images N×C×H×W in [0, 1], flattened to C·H·W."""
        return self.encoder(x.flatten(1))

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        """Images N×C×H×W in (0, 1) from codes N×code."""
        # Reshape, then sigmoid: in the exported graph the sigmoid then writes the output itself, where onnxruntime
        # would copy a Reshape's output into it (INT8 files 1.0–1.6× faster at batch 256, fp32 level; README, Speed).
        return torch.sigmoid(self.decoder(code).reshape(-1, *self.shape))

    def encoder_filters(self) -> torch.Tensor:
        """Input weights of the first hidden layer as images, one per unit: units × C × H × W."""
        first = self.encoder[0]
        assert isinstance(first, nn.Linear)
        return first.weight.detach().reshape(-1, *self.shape)
