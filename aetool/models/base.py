"""What every registry model is: an autoencoder with ``encode``, ``decode`` and ``forward`` → (reconstruction, code)."""

from __future__ import annotations

import torch
from torch import nn

from aetool.errors import ContractError


class Autoencoder(nn.Module):
    """An autoencoder on N×C×H×W images in [0, 1]: ``forward`` returns the reconstruction and the code (latent).

    Subclasses set ``channels`` (1 grey, 3 colour) and, for models of one fixed size (the dense ones), ``size``
    (height, width); ``multiple_of`` is None for those, else the number every height and width must be divisible
    by (fully convolutional models take any such size; 1 for any size at all). They define :meth:`encode` and
    :meth:`decode`. To add one to the registry (``aetool.models.REGISTRY``, README "Adding a model"), its
    constructor takes ``channels`` as a keyword (and ``size``, for one fixed size), as training passes them; its
    class derives from one in ``KINDS`` or is added there; a convolutional model sees at most
    ``aetool.runtime.tiles.MARGIN`` pixels around each output pixel (its receptive field's radius), or large
    images, which the runtime runs in tiles with that much context, differ from one call at the tiles' seams.
    """

    channels: int = 1
    size: tuple[int, int] | None = None
    multiple_of: int | None = None

    @property
    def decodes_codes(self) -> bool:
        """Whether :meth:`decode` needs nothing but the code, so the decoder can be a graph of its own."""
        return True

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The code of a batch of images: ``x`` N×C×H×W float32 in [0, 1] → N×D (dense) or N×C'×h×w (conv)."""
        raise NotImplementedError

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        """Images from codes: N×D or N×C'×h×w → N×C×H×W float32 in [0, 1]."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(reconstruction N×C×H×W in [0, 1], code) of images ``x`` N×C×H×W in [0, 1]."""
        code = self.encode(x)
        return self.decode(code), code


@torch.no_grad()
def shaped_reconstruction(net: nn.Module, images: torch.Tensor, *, what: str) -> torch.Tensor:
    """``net``'s reconstruction of N×C×H×W float ``images`` in eval mode (its mode restored after). Raises
    ``ContractError`` when it is not of their shape, the message starting with ``what`` (which names the images):
    PyTorch's losses would broadcast it, and an exported file would break the runtime's contract (README, Adding a
    model)."""
    training = net.training
    net.eval()
    try:
        output = net(images)[0]
    finally:
        net.train(training)
    if output.shape != images.shape:
        raise ContractError(
            f"{what} has shape {'×'.join(map(str, output.shape))}: an autoencoder returns its input's shape, N×C×H×W "
            "(README, Adding a model)"
        )
    return output
