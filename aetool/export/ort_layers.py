"""Export-time stand-ins for what onnxruntime's CPU provider runs slowly; same weights, same results.

The unpooling conv AEs (``conv-unpool``, ``conv-unpool-deconv``) spent most of their onnxruntime time in the first
pooling stage: ``MaxPool`` with its ``Indices`` output is scalar, branchy code (the README's per-node profile,
from benchmarks/op_profile.py), followed by ``MaxUnpool`` and a 1-output-channel conv that the NCHWc kernels pad
to 16 channels. ``FirstStageByWindow`` computes that stage with no indices at all,
from ops onnxruntime runs fast (stride-2 convs, elementwise max and compare, one matmul, ``Col2Im``); see its
docstring. The second, 4× smaller, stage keeps ``MaxPool`` → ``MaxUnpool`` (``unpool.py``). A stride-1
``ConvTranspose2d`` also runs as the ``Conv2d`` it equals, which onnxruntime runs faster.

PCA's encoder ``(x − mean) @ basisᵀ`` runs as one ``Gemm`` with the mean folded into its bias (``PCAAsGemms``):
onnxruntime fuses ``MatMul`` + ``Add`` into ``Gemm`` but runs the ``Sub`` before it as a pass of its own over the
input (the README's Export section gives the measured gain, from benchmarks/run_all.py).

Only the order of float additions changes; the parity check holds every exported graph to the original model,
ties included. Whole-graph times: benchmarks/export_speed.py.
"""

from __future__ import annotations

import copy
import itertools

import torch
import torch.nn.functional as F
from torch import nn

from aetool.models.conv import ConvAE
from aetool.models.dense import PCA

# Window positions p = 2a + b of a 2×2 pooling window, row-major: PyTorch keeps the first maximum in this order.
POSITIONS = ((0, 0), (0, 1), (1, 0), (1, 1))


def conv_weight(layer: nn.Conv2d | nn.ConvTranspose2d) -> torch.Tensor:
    """The (out, in, k, k) weight of the stride-1 'same' convolution that ``layer`` computes."""
    if isinstance(layer, nn.ConvTranspose2d):
        return layer.weight.detach().transpose(0, 1).flip(2, 3)
    return layer.weight.detach()


def is_same_3x3(layer: nn.Module) -> bool:
    """A 3×3, stride-1, padding-1, ungrouped (transposed) convolution: what the stand-ins reproduce."""
    return isinstance(layer, nn.Conv2d | nn.ConvTranspose2d) and bool(
        type(layer) in (nn.Conv2d, nn.ConvTranspose2d)
        and layer.kernel_size == (3, 3)
        and layer.stride == (1, 1)
        and layer.padding == (1, 1)
        and layer.dilation == (1, 1)
        and layer.groups == 1
        and layer.padding_mode == "zeros"
        and getattr(layer, "output_padding", (0, 0)) == (0, 0)
    )


def as_conv(layer: nn.Conv2d | nn.ConvTranspose2d) -> nn.Conv2d:
    """``layer`` as a ``Conv2d`` (a stride-1 3×3 ``ConvTranspose2d`` is a conv with its kernel flipped)."""
    if isinstance(layer, nn.Conv2d):
        return layer
    weight = conv_weight(layer)
    conv = nn.Conv2d(weight.shape[1], weight.shape[0], 3, padding=1, bias=layer.bias is not None)
    conv.weight.data.copy_(weight)
    if layer.bias is not None and conv.bias is not None:
        conv.bias.data.copy_(layer.bias.detach())
    return conv


def unpool_conv_taps(weight: torch.Tensor) -> torch.Tensor:
    """Taps (out·16, 4·in) of ``conv(unpool(d))`` taken as a 4×4 stride-2 transposed conv over (position, channel).

    Unpooling puts ``d[c, i, j]`` at pixel (2i + a, 2j + b) of the window position p = 2a + b holding the first
    maximum; a 3×3 'same' conv (``weight``: out × in × 3 × 3) then spreads it to output pixels (2i + ky − 1,
    2j + kx − 1), tap (a − dy + 2, b − dx + 2) of a 4×4 stride-2 transposed conv over 4·in input channels
    (p-major).
    """
    out_channels, in_channels = weight.shape[:2]
    taps = weight.new_zeros(out_channels, 4, 4, 4, in_channels)  # out, ky, kx, position, in
    for p, (a, b) in enumerate(POSITIONS):
        for dy in range(3):
            for dx in range(3):
                taps[:, a - dy + 2, b - dx + 2, p, :] = weight[:, :, dy, dx]
    return taps.reshape(out_channels * 16, 4 * in_channels)


class FirstStageByWindow(nn.Module):
    """An unpooling ``ConvAE`` whose first pooling and last unpooling run without indices.

    Encoder: the first conv is computed at each of the four positions of every 2×2 window (four stride-2 convs of
    the padded input, the same multiply-adds as one stride-1 conv) and ReLU'd; their maximum is the pooled value.
    ``reached_p`` says the window's maximum is among positions 0..p: the maximum of those is ≥ the maximum of the
    rest. It is 0…0 1…1 over p and first 1 at the first maximum, PyTorch's rule for ties (row-major, first wins).
    The pooled value itself is not compared: int8 quantization rewires every consumer of the tensor it quantizes
    (the second conv's input), so a compare against it would see a rounded copy. Decoder: unpooling and the last
    conv are linear in the decoder activation ``d``, so together they are one matmul of ``unpool_conv_taps`` with
    ``d`` times each position's first-max indicator ``reached_p − reached_{p−1}`` (each product ``d`` or an exact
    0), stacked over positions, and a ``Col2Im`` (``F.fold``) that adds the taps into place.
    """

    taps: torch.Tensor
    last_bias: torch.Tensor

    def __init__(self, net: ConvAE) -> None:
        super().__init__()
        layers = (net.enc1, net.dec1, net.dec2)
        if not (net.uses_indices and all(map(is_same_3x3, layers)) and net.dec1.bias is not None):
            raise NotImplementedError("only an unpooling ConvAE with 3×3 stride-1 'same' convolutions stands in")
        self.enc1, self.enc2, self.dec2 = net.enc1, net.enc2, as_conv(net.dec2)
        self.register_buffer("taps", unpool_conv_taps(conv_weight(net.dec1)))
        self.register_buffer("last_bias", net.dec1.bias.detach().reshape(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        padded = F.pad(x, (1, 1, 1, 1))
        at = [F.relu(F.conv2d(padded[:, :, a:, b:], self.enc1.weight, self.enc1.bias, stride=2)) for a, b in POSITIONS]
        upto = [at[0]]  # upto[p]: maximum of positions 0..p, for p = 0, 1, 2
        for position in at[1:3]:
            upto.append(torch.maximum(upto[-1], position))
        after = [at[3]]  # after[p]: maximum of positions p+1..3, built from p = 2 down
        for position in (at[2], at[1]):
            after.insert(0, torch.maximum(position, after[0]))
        pooled = torch.maximum(upto[2], at[3])
        code, indices = F.max_pool2d(F.relu(self.enc2(pooled)), 2, return_indices=True)
        d = F.relu(self.dec2(F.max_unpool2d(code, indices, [2, 2])))
        n, c, h, w = d.shape
        reached = [d * (low >= high) for low, high in zip(upto, after, strict=True)] + [d]
        at_first_max = [reached[0]] + [now - before for before, now in itertools.pairwise(reached)]
        out = F.fold(
            torch.matmul(self.taps, torch.cat(at_first_max, 1).reshape(n, 4 * c, h * w)),
            (2 * h, 2 * w),
            4,
            stride=2,
            padding=1,
        )
        return torch.sigmoid(out + self.last_bias), code


class PCAAsGemms(nn.Module):
    """A ``PCA`` whose encoder is one affine map: ``code = x @ basisᵀ + code_bias``, ``code_bias = −mean @ basisᵀ``.

    The bias is computed in float64 and rounded once, so the code differs from PCA's by float32 rounding only.
    """

    code_bias: torch.Tensor

    def __init__(self, pca: PCA) -> None:
        super().__init__()
        self.pca = pca
        self.register_buffer("code_bias", -(pca.mean.double() @ pca.basis.double().T).float())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        code = F.linear(x.flatten(1), self.pca.basis, self.code_bias)
        return self.pca.decode(code), code


def for_onnxruntime(net: nn.Module) -> nn.Module:
    """What to export for ``net``: a stand-in for an unpooling ConvAE or a PCA, else ``net`` itself."""
    if isinstance(net, ConvAE) and net.uses_indices:
        return FirstStageByWindow(copy.deepcopy(net))
    if isinstance(net, PCA):
        return PCAAsGemms(copy.deepcopy(net))
    return net
