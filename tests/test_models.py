import pytest

torch = pytest.importorskip("torch", reason="model tests need the train extra")

from aetool.models import REGISTRY, ConvAE, DnCNN, build_model, get_spec  # noqa: E402


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


def test_unknown_model_names_the_known_ones():
    with pytest.raises(KeyError, match="conv-unpool"):
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
