import pytest

torch = pytest.importorskip("torch", reason="training tests need the train extra")

import torch.nn.functional as F  # noqa: E402

from aetool.train.losses import BinaryCrossEntropy, reconstruction_loss  # noqa: E402


def probabilities_and_targets():
    """Sigmoid outputs spread over (0, 1), exact 0, 1 and ½ among them, against targets in [0, 1] with 0 and 1."""
    generator = torch.Generator().manual_seed(0)
    outputs = torch.sigmoid(6 * torch.randn(16, 1, 28, 28, generator=generator))
    outputs[0, 0, 0, :5] = torch.tensor([0.0, 1.0, 0.0, 1.0, 0.5])
    targets = torch.rand(16, 1, 28, 28, generator=generator)
    targets[1], targets[2] = 0.0, 1.0
    targets[0, 0, 0, :4] = torch.tensor([0.0, 1.0, 1.0, 0.0])  # log 0 on both sides: PyTorch's −100 floor
    return outputs, targets


def loss_and_gradient(loss, outputs, targets):
    outputs = outputs.clone().requires_grad_()
    value = loss(outputs, targets)
    value.backward()
    return value.detach(), outputs.grad


def test_bce_gives_pytorchs_loss_and_gradient_saturated_values_included():
    outputs, targets = probabilities_and_targets()
    expected_value, expected_gradient = loss_and_gradient(F.binary_cross_entropy, outputs, targets)
    value, gradient = loss_and_gradient(BinaryCrossEntropy.apply, outputs, targets)
    assert torch.isfinite(value) and value > 1.0  # the two saturated mistakes cost 100 each
    torch.testing.assert_close(value, expected_value, rtol=1e-6, atol=0)
    torch.testing.assert_close(gradient, expected_gradient, rtol=1e-6, atol=0)


def test_reconstruction_loss_picks_bce_or_mse_and_leaves_the_target_without_gradient():
    outputs, targets = probabilities_and_targets()
    targets.requires_grad_()
    bce = reconstruction_loss("bce", outputs, targets)
    bce.backward()
    assert targets.grad is None or not targets.grad.any()
    torch.testing.assert_close(bce.detach(), F.binary_cross_entropy(outputs, targets.detach()), rtol=1e-6, atol=0)
    mse = reconstruction_loss("mse", outputs, targets.detach())
    assert mse == F.mse_loss(outputs, targets.detach())
