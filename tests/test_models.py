import contextlib

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="model tests need the train extra")

from aetool.models import (  # noqa: E402
    KINDS,
    REGISTRY,
    Autoencoder,
    ConvAE,
    DenseAE,
    DnCNN,
    ModelSpec,
    build_model,
    get_spec,
)


@pytest.mark.parametrize("name", list(REGISTRY))
def test_output_shape_range_and_code(name):
    torch.manual_seed(0)
    model = build_model(name).eval()
    x = torch.rand(5, 1, 28, 28)
    if name == "pca":
        model.fit(torch.rand(100, 1, 28, 28))
    with torch.no_grad():
        output, code = model(x)
        assert torch.equal(model.encode(x), code)
    assert output.shape == x.shape
    assert float(output.min()) >= 0 and float(output.max()) <= 1
    assert code.shape[0] == 5


@pytest.mark.parametrize("name", [name for name in REGISTRY if build_model(name).decodes_codes])
def test_decode_of_code_gives_reconstruction(name):
    model = build_model(name).eval()
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        output, code = model(x)
        assert torch.allclose(model.decode(code), output)


def test_deep_code_has_thirty_units_and_pca_default_components():
    assert build_model("deep").encode(torch.rand(1, 1, 28, 28)).shape == (1, 30)
    assert build_model("pca").basis.shape == (30, 784)
    assert build_model("pca", components=5).basis.shape == (5, 784)


@pytest.mark.parametrize("upsample", ["unpool", "unpool-deconv", "deconv"])
def test_conv_models_are_fully_convolutional(upsample):
    model = ConvAE(upsample).eval()
    with torch.no_grad():
        output, code = model(torch.rand(2, 1, 32, 48))
    assert output.shape == (2, 1, 32, 48)
    assert code.shape[2:] == (8, 12)


def test_unpool_decoder_needs_indices():
    model = ConvAE("unpool")
    with pytest.raises(ValueError, match="pooling indices"):
        model.decode(torch.rand(1, 16, 7, 7))


def test_pca_fit_recovers_a_planted_subspace():
    torch.manual_seed(0)
    basis = torch.linalg.qr(torch.randn(784, 3))[0].T  # 3 orthonormal directions
    images = (0.5 + 0.1 * torch.randn(500, 3) @ basis).reshape(-1, 1, 28, 28)
    model = build_model("pca", components=3)
    model.fit(images)
    output, _ = model(images)
    assert float((output - images.clamp(0, 1)).abs().max()) < 1e-4


def test_pca_fit_on_fewer_images_than_pixels_finds_their_directions_without_a_pixels_square_covariance():
    """A few 128×128 colour photos made a covariance of 19 GB, and at D = 6,144 its eigendecomposition ran for
    148 s (trial 94); here D = 524,288 would need 2.2 TB. The singular vectors of the centred images are the same
    directions, checked against those of their Gram matrix."""
    torch.manual_seed(0)
    images = torch.rand(4, 1, 512, 1024)
    model = build_model("pca", components=2, size=(512, 1024))
    model.fit(images)
    flat = images.reshape(4, -1).double()
    centred = (flat - flat.mean(0)).numpy()
    _, vectors = np.linalg.eigh(centred @ centred.T)  # the 4×4 Gram matrix, ascending
    directions = centred.T @ vectors[:, -2:]
    directions /= np.linalg.norm(directions, axis=0)
    overlap = model.basis.double().numpy() @ directions  # 2×2 and orthogonal when both span one plane
    np.testing.assert_allclose(overlap @ overlap.T, np.eye(2), atol=1e-5)


def test_pca_fit_on_fewer_images_than_its_components_span_says_so():
    """A shape error from copying the basis (trial 97); the covariance gave arbitrary directions before."""
    with pytest.raises(
        ValueError, match=r"^PCA of 30 components needs at least 31 images of at least 30 pixels; got 5"
    ):
        build_model("pca").fit(torch.rand(5, 1, 28, 28))


def test_unknown_model_names_the_known_ones():
    with pytest.raises(ValueError, match=r"^unknown model 'nope'; known models: pca, .*conv-unpool"):
        get_spec("nope")


@pytest.mark.parametrize("name", list(REGISTRY))
def test_every_model_takes_colour_images(name):
    torch.manual_seed(0)
    net = build_model(name, channels=3, **({"size": (24, 32)} if get_spec(name).kind in ("dense", "pca") else {}))
    x = torch.rand(2, 3, 24, 32)
    if name == "pca":
        net.fit(torch.rand(50, 3, 24, 32))
    with torch.no_grad():
        output, _ = net(x)
    assert output.shape == x.shape and net.channels == 3


def test_the_decoder_graph_exists_only_where_the_code_alone_decodes():
    decodes = {name for name in REGISTRY if build_model(name).decodes_codes}
    assert decodes == {"pca", "deep", "ae64", "ae128", "ae256", "sparse", "denoise-dense", "conv-deconv", "anomaly"}


def test_dncnn_subtracts_the_noise_it_predicts_at_any_size():
    torch.manual_seed(0)
    net = DnCNN(depth=4, width=8, channels=3).eval()
    x = torch.rand(2, 3, 13, 17)  # any height and width
    with torch.no_grad():
        output, noise = net(x)
    torch.testing.assert_close(output, (x - noise).clamp(0, 1))
    assert noise.shape == x.shape and net.multiple_of == 1 and not net.decodes_codes
    with pytest.raises(ValueError, match="at least 2 layers"):
        DnCNN(depth=1)


class Eights(Autoencoder):
    """A model of one's own, as a contributor adds one: fully convolutional, sizes in multiples of 8."""

    multiple_of = 8

    def __init__(self, width: int = 4, *, channels: int = 1) -> None:
        super().__init__()
        self.channels = channels
        self.down = torch.nn.Conv2d(channels, width, 8, stride=8)
        self.up = torch.nn.ConvTranspose2d(width, channels, 8, stride=8)

    def encode(self, x):
        return torch.relu(self.down(x))

    def decode(self, code):
        return torch.sigmoid(self.up(code))


class OwnDncnn(DnCNN):
    """A plain subclass of a registry class: its kind is its parent's."""


def test_a_subclass_takes_its_parents_kind_and_an_unknown_class_is_named():
    """An exact-class lookup made a subclass fail with the bare message "<class '...'>"."""
    assert ModelSpec("own", "", OwnDncnn).kind == "conv"
    with pytest.raises(
        TypeError, match=r"model 'eights': Eights derives from none of PCA, DenseAE, ConvAE, DnCNN; add "
    ):
        ModelSpec("eights", "", Eights)
    with monkeypatch_kinds(Eights, "conv"):
        assert ModelSpec("eights", "", Eights, {"width": 2}).kind == "conv"


def test_registry_entries_are_checked_when_built():
    """Misspelt training settings were ignored (defaults trained instead); arguments the constructor lacks failed
    with a TypeError traceback after the data had been read."""
    with pytest.raises(TypeError, match="unknown training settings epoch, learning_rate; known: epochs, batch_size"):
        ModelSpec("x", "", DenseAE, {"code": 16}, {"epoch": 3, "learning_rate": 1e-2})
    with pytest.raises(TypeError, match=r"DenseAE\(\) takes no arch_width keyword"):
        ModelSpec("x", "", DenseAE, {"arch_width": 16})
    with monkeypatch_kinds(Eights, "dense"), pytest.raises(TypeError, match=r"Eights\(\) takes no size keyword"):
        ModelSpec("x", "", Eights)  # a model of one size is built for the images' size


def test_a_registry_default_that_cannot_work_is_named_as_the_registrys_not_as_an_option(monkeypatch):
    """Training said "--lr must be a positive number", an option the user never gave."""
    from aetool.train import TrainConfig

    monkeypatch.setitem(REGISTRY, "neg", ModelSpec("neg", "", DenseAE, {}, {"lr": -1e-3}))
    monkeypatch.setitem(REGISTRY, "huber", ModelSpec("huber", "", DenseAE, {}, {"loss": "huber"}))
    with pytest.raises(ValueError, match=r"^model 'neg': its registry entry's training default lr=-0.001 cannot work "):
        TrainConfig("neg")
    with pytest.raises(ValueError, match=r"default loss='huber' cannot work \(unknown loss 'huber'; choose one of"):
        TrainConfig("huber")
    with pytest.raises(ValueError, match=r"^--lr must be a positive number, got -1.0$"):  # given: the option's words
        TrainConfig("neg", lr=-1.0)
    assert TrainConfig("neg", lr=1e-3).lr == 1e-3


def test_a_convolutional_model_without_multiple_of_is_refused_when_built(monkeypatch):
    """Training said "takes any size (use --patch)" on MNIST and "takes one size: pass --size" on photos."""

    class AnySize(Eights):
        multiple_of = None

    monkeypatch.setitem(KINDS, AnySize, "conv")
    monkeypatch.setitem(REGISTRY, "any-size", ModelSpec("any-size", "", AnySize))
    with pytest.raises(TypeError, match="'any-size': a convolutional model sets multiple_of"):
        build_model("any-size")


def test_a_registry_mistake_in_train_is_one_line_not_a_traceback(monkeypatch, data_dir, tmp_path):
    """A TypeError from the registry reached the CLI as a traceback, exit 1."""
    from typer.testing import CliRunner

    from aetool.cli import app

    class AnySize(Eights):
        multiple_of = None

    monkeypatch.setitem(KINDS, AnySize, "conv")
    monkeypatch.setitem(REGISTRY, "any-size", ModelSpec("any-size", "", AnySize))
    result = CliRunner().invoke(app, ["train", "any-size", "--data-dir", str(data_dir), "-o", str(tmp_path / "r")])
    assert result.exit_code == 2, result.output
    assert "aetool: error: model 'any-size': a convolutional model sets multiple_of" in result.output
    assert "Traceback" not in result.output


@contextlib.contextmanager
def monkeypatch_kinds(cls, kind):
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(KINDS, cls, kind)
        yield


def test_a_subclass_of_the_conv_autoencoder_trains_on_noise_with_its_loss(monkeypatch):
    """Only ConvAE itself got BCE under noise (README: the conv AEs default to BCE whenever noise is given)."""
    from aetool.train import TrainConfig

    class Wider(ConvAE):
        pass

    monkeypatch.setitem(REGISTRY, "wider", ModelSpec("wider", "", Wider, {"widths": (8, 8)}))
    assert TrainConfig("wider", noise=0.5).loss == "bce" and TrainConfig("wider").loss == "mse"


def test_the_report_names_a_model_outside_its_ten_by_its_registry_name():
    from aetool.report.sections import label

    assert (label("conv-deconv"), label("ae16")) == ("deconv", "ae16")
