"""What every registry model is: an autoencoder with ``encode``, ``decode`` and ``forward`` → (reconstruction, code)."""

from __future__ import annotations

import torch
from torch import nn


class Autoencoder(nn.Module):
    """An autoencoder on N×C×H×W images in [0, 1]: ``forward`` returns the reconstruction and the code (latent).

    Subclasses define :meth:`encode` and :meth:`decode`; training, export and the report rely on nothing else.
    """

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The code of a batch of images."""
        raise NotImplementedError

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        """Images from codes (the unpooling conv AEs also need the encoder's pooling indices, see ``ConvAE``)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        code = self.encode(x)
        return self.decode(code), code
