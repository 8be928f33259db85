"""The report's convolutional autoencoders (§6), differing only in how the decoder upsamples."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from aetool.models.base import Autoencoder

UPSAMPLING = ("unpool", "unpool-deconv", "deconv")


class ConvAE(Autoencoder):
    """Fully convolutional AE: two conv+ReLU+2×2 max-pool stages down, two upsampling stages back.

    ``upsample`` picks the decoder:
    - ``unpool``: max-unpooling with the encoder's pooling indices, each followed by a 3×3 convolution;
    - ``unpool-deconv``: max-unpooling followed by a 3×3 transposed convolution;
    - ``deconv``: stride-2 transposed convolutions alone (no indices, so ``decode`` needs only the code).
    Any input whose height and width are multiples of 4 works; ``channels`` is the image's (1 grey, 3 colour),
    ``widths`` the feature maps of the two stages.
    """

    multiple_of = 4  # two 2×2 poolings

    def __init__(self, upsample: str = "unpool", widths: tuple[int, int] = (32, 32), *, channels: int = 1) -> None:
        super().__init__()
        if upsample not in UPSAMPLING:
            raise ValueError(f"unknown upsampling {upsample!r}; choose one of {', '.join(UPSAMPLING)}")
        self.upsample, self.channels = upsample, channels
        c1, c2 = widths
        self.dec2: nn.Conv2d | nn.ConvTranspose2d
        self.dec1: nn.Conv2d | nn.ConvTranspose2d
        self.enc1 = nn.Conv2d(channels, c1, 3, padding=1)
        self.enc2 = nn.Conv2d(c1, c2, 3, padding=1)
        if upsample == "unpool":
            self.dec2 = nn.Conv2d(c2, c1, 3, padding=1)
            self.dec1 = nn.Conv2d(c1, channels, 3, padding=1)
        elif upsample == "unpool-deconv":
            self.dec2 = nn.ConvTranspose2d(c2, c1, 3, padding=1)
            self.dec1 = nn.ConvTranspose2d(c1, channels, 3, padding=1)
        else:
            self.dec2 = nn.ConvTranspose2d(c2, c1, 4, stride=2, padding=1)
            self.dec1 = nn.ConvTranspose2d(c1, channels, 4, stride=2, padding=1)

    @property
    def uses_indices(self) -> bool:
        """Whether the decoder unpools with the encoder's pooling indices (so it cannot decode a code alone)."""
        return self.upsample != "deconv"

    @property
    def decodes_codes(self) -> bool:
        return not self.uses_indices

    def encode_with_indices(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The code (N×C2×H/4×W/4) of images ``x`` N×C×H×W in [0, 1] (H and W multiples of 4), and the two
        poolings' indices as ``F.max_pool2d`` returns them: int64, the argmax's flat position in its channel's plane
        of the pooled map (N×C1×H/2×W/2, then N×C2×H/4×W/4)."""
        h, i1 = F.max_pool2d(F.relu(self.enc1(x)), 2, return_indices=True)
        code, i2 = F.max_pool2d(F.relu(self.enc2(h)), 2, return_indices=True)
        return code, [i1, i2]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The code, N×C2×H/4×W/4, of images N×C×H×W in [0, 1]."""
        return self.encode_with_indices(x)[0]

    def decode(self, code: torch.Tensor, *, indices: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Decode a code; the unpooling decoders also need the encoder's pooling indices."""
        if not self.uses_indices:
            return torch.sigmoid(self.dec1(F.relu(self.dec2(code))))
        if indices is None:
            raise ValueError(f"the {self.upsample} decoder needs the encoder's pooling indices")
        i1, i2 = indices
        h = F.relu(self.dec2(F.max_unpool2d(code, i2, [2, 2])))
        return torch.sigmoid(self.dec1(F.max_unpool2d(h, i1, [2, 2])))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(reconstruction N×C×H×W in [0, 1], code N×C2×H/4×W/4); unpooling decoders use the encoder's indices."""
        code, indices = self.encode_with_indices(x)
        return self.decode(code, indices=indices), code


class DnCNN(Autoencoder):
    """A residual CNN denoiser in the spirit of DnCNN (Zhang, Zuo, Chen, Meng & Zhang, "Beyond a Gaussian
    Denoiser", IEEE TIP 2017): 3×3 convolutions of ``width`` feature maps with ReLUs between predict the noise;
    the output is the input minus that prediction, clipped to [0, 1] (unclipped while training, so the loss keeps a
    gradient where the clip would cut it).

    ``down=False``: ``depth`` convolutions at full resolution (the classic DnCNN). ``down=True``: a first conv at
    full resolution, a 2×2 stride-2 conv down, ``depth − 2`` convs at half resolution, a 2×2 stride-2 transposed
    conv up with the first conv's features added back (a U-Net-style skip), and a last conv: about half the
    arithmetic per pixel and twice the receptive field, so heights and widths must be even. No batch normalisation
    (the export stays a plain chain of convs). The code is the predicted noise (N×C×H×W): what the model removed.
    """

    def __init__(self, depth: int = 7, width: int = 32, down: bool = False, *, channels: int = 1) -> None:
        super().__init__()
        if depth < 2:
            raise ValueError(f"a DnCNN needs at least 2 layers, got {depth}")
        self.channels, self.down = channels, down
        self.multiple_of = 2 if down else 1
        self.head = nn.Sequential(nn.Conv2d(channels, width, 3, padding=1), nn.ReLU())
        body: list[nn.Module] = [nn.Conv2d(width, width, 2, stride=2), nn.ReLU()] if down else []
        for _ in range(depth - 2):
            body += [nn.Conv2d(width, width, 3, padding=1), nn.ReLU()]
        if down:
            body += [nn.ConvTranspose2d(width, width, 2, stride=2), nn.ReLU()]
        self.body = nn.Sequential(*body)
        self.tail = nn.Conv2d(width, channels, 3, padding=1)

    @property
    def decodes_codes(self) -> bool:
        return False  # the output is the input minus the code: the code alone is not enough

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The predicted noise."""
        features = self.head(x)
        return self.tail(self.body(features) + features if self.down else self.body(features))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        noise = self.encode(x)
        denoised = x - noise
        return (denoised if self.training else denoised.clamp(0, 1)), noise
