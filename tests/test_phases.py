"""Transposed convolutions rewritten as phase convolutions (aetool.export.phases): the same outputs, no ConvTranspose."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the export extra (onnx) is not installed")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from aetool.export.phases import MIN_PHASE_CHANNELS, phase_taps, split_transposed_convs  # noqa: E402

RNG = np.random.default_rng(0)


def graph(
    nodes: list[onnx.NodeProto],
    weights: dict[str, np.ndarray],
    channels: int,
    outputs: list[str],
    *,
    opset: int = 20,
    fed: tuple[str, ...] = (),
) -> onnx.ModelProto:
    """A model of ``nodes`` from input ``x`` (N × channels × H × W, all dynamic but the channels) to ``outputs``;
    the weights named in ``fed`` are graph inputs too (initializers as defaults a caller may override)."""
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", channels, "H", "W"])]
    inputs += [helper.make_tensor_value_info(name, TensorProto.FLOAT, weights[name].shape) for name in fed]
    outs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", None, None, None]) for name in outputs]
    initializers = [numpy_helper.from_array(value.astype(np.float32), name) for name, value in weights.items()]
    model = helper.make_model(
        helper.make_graph(nodes, "g", inputs, outs, initializers), opset_imports=[helper.make_opsetid("", opset)]
    )
    onnx.checker.check_model(model, full_check=True)
    return model


def transposed(name: str, source: str, cin: int, cout: int, *, kernel: int = 4, stride: int = 2, pad: int = 1, **attrs):
    """A ConvTranspose node ``source`` → ``name`` and its weights (``name``.w, ``name``.b)."""
    weights = {f"{name}.w": RNG.normal(size=(cin, cout, kernel, kernel)), f"{name}.b": RNG.normal(size=cout)}
    node = helper.make_node(
        "ConvTranspose",
        [source, *weights],
        [name],
        kernel_shape=[kernel, kernel],
        strides=[stride] * 2,
        pads=[pad] * 4,
        **attrs,
    )
    return node, weights


def run(model: onnx.ModelProto, x: np.ndarray) -> list[np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})


def test_phase_taps_of_a_4x4_stride_2_kernel():
    # o = 2i − 1 + k: even outputs take taps 3 (from i − 1) and 1 (from i), odd ones 2 (from i) and 0 (from i + 1).
    taps = phase_taps(kernel=4, stride=2, pad=1, factor=1)
    assert {key: sorted(pairs) for key, pairs in taps.items()} == {(0, 0): [(-1, 3), (0, 1)], (1, 0): [(0, 2), (1, 0)]}


def test_a_deconv_decoder_chain_gives_the_same_output_with_no_transposed_conv():
    wide = MIN_PHASE_CHANNELS + 2  # a conv per output phase
    first, w1 = transposed("up1", "x", 3, wide)
    second, w2 = transposed("up2", "r", wide, 1)  # one output channel: read from the split input phases
    nodes = [first, helper.make_node("Relu", ["up1"], ["r"]), second, helper.make_node("Sigmoid", ["up2"], ["y"])]
    model = graph(nodes, w1 | w2, 3, ["y"])
    rewritten = split_transposed_convs(model)
    onnx.checker.check_model(rewritten, full_check=True)
    ops = [node.op_type for node in rewritten.graph.node]
    assert "ConvTranspose" not in ops and ops.count("DepthToSpace") == 1
    # The first layer: a 2×2 conv per output phase. The second: per input phase, a 1×1 conv to every output phase
    # and a depthwise conv that moves each to its one window position (each takes a single tap from each input).
    depthwise = [node for node in rewritten.graph.node if any(a.name == "group" for a in node.attribute)]
    assert ops.count("Conv") == 4 + 4 + 4 and len(depthwise) == 4
    assert {init.name for init in rewritten.graph.initializer}.isdisjoint(w1 | w2)  # the old weights are gone
    x = RNG.random((2, 3, 5, 7), dtype=np.float32)  # odd, unequal sizes: every edge phase
    (expected,), (got,) = run(model, x), run(rewritten, x)
    assert got.shape == expected.shape == (2, 1, 20, 28)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_a_split_tensor_other_nodes_read_is_interleaved_once_under_its_name():
    up, weights = transposed("up", "x", 2, MIN_PHASE_CHANNELS)
    nodes = [up, helper.make_node("Relu", ["up"], ["r"]), helper.make_node("Add", ["r", "r"], ["y"])]
    model = graph(nodes, weights, 2, ["y", "r"])  # "r" is read by Add and is an output too
    rewritten = split_transposed_convs(model)
    ops = [node.op_type for node in rewritten.graph.node]
    assert ops.count("DepthToSpace") == 1 and ops.count("Concat") == 1 and "ConvTranspose" not in ops
    x = RNG.random((1, 2, 4, 3), dtype=np.float32)
    for expected, got in zip(run(model, x), run(rewritten, x), strict=True):
        np.testing.assert_allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize(
    "layer",
    [
        {"cout": MIN_PHASE_CHANNELS - 1},  # too few channels for a conv per phase, and a plain input
        {"kernel": 2, "pad": 0},  # taps that do not overlap: onnxruntime's own kernel is as fast
        {"kernel": 3, "stride": 1},  # stride 1 (ort_layers writes those as the Conv they are)
        {"output_padding": [1, 1]},
        {"group": 2},
    ],
)
def test_other_transposed_convs_are_left_as_they_are(layer):
    cout = layer.pop("cout", MIN_PHASE_CHANNELS)
    node, weights = transposed("y", "x", 2, cout // layer.get("group", 1), **layer)
    weights["y.b"] = RNG.normal(size=cout)
    model = graph([node], weights, 2, ["y"])
    assert split_transposed_convs(model) is model


def test_kernels_as_large_as_their_stride_are_rewritten_when_asked():
    node, weights = transposed("up", "x", 3, MIN_PHASE_CHANNELS, kernel=2, pad=0)  # DnCNN's upsampling
    model = graph([node, helper.make_node("Relu", ["up"], ["y"])], weights, 3, ["y"])
    assert split_transposed_convs(model) is model
    rewritten = split_transposed_convs(model, overlapping_only=False)
    ops = [node.op_type for node in rewritten.graph.node]
    assert "ConvTranspose" not in ops and ops.count("Conv") == 4 and ops.count("DepthToSpace") == 1
    x = RNG.random((2, 3, 3, 5), dtype=np.float32)
    np.testing.assert_allclose(run(rewritten, x)[0], run(model, x)[0], atol=1e-5)


def test_new_names_avoid_the_graphs_own():
    up, weights = transposed("up", "t", 2, MIN_PHASE_CHANNELS)
    taken = ["phases/up/0_weight", "phases/up/1_bias", "phases/up/2_conv"]  # what the rewrite would name first
    nodes = [helper.make_node("Identity", ["x"], [taken[0]]), helper.make_node("Identity", [taken[0]], ["t"]), up]
    weights[taken[1]] = np.ones(1)  # an initializer by such a name as well
    nodes.append(helper.make_node("Add", ["up", taken[1]], [taken[2]]))
    model = graph(nodes, weights, 2, [taken[2]])
    rewritten = split_transposed_convs(model)
    onnx.checker.check_model(rewritten, full_check=True)
    assert "ConvTranspose" not in [node.op_type for node in rewritten.graph.node]
    x = RNG.random((1, 2, 3, 4), dtype=np.float32)
    np.testing.assert_allclose(run(rewritten, x)[0], run(model, x)[0], atol=1e-5)


def test_graphs_it_cannot_rewrite_safely_are_left_as_they_are():
    up, weights = transposed("y", "x", 2, MIN_PHASE_CHANNELS)
    fed = graph([up], weights, 2, ["y"], fed=("y.w",))  # weights a caller may feed are not constants
    old = graph([up], weights, 2, ["y"], opset=10)  # DepthToSpace has no mode before opset 11
    assert split_transposed_convs(fed) is fed and split_transposed_convs(old) is old
    branch = helper.make_graph(
        [helper.make_node("Identity", ["y"], ["z"])],
        "b",
        [],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)],
    )
    model = graph([up], weights, 2, ["y"])
    model.graph.node.extend(  # a subgraph reads "y", which only the outer graph defines
        [
            helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(np.array(True))),
            helper.make_node("If", ["c"], ["out"], then_branch=branch, else_branch=branch),
        ]
    )
    assert split_transposed_convs(model) is model


def test_an_initializer_the_graph_outputs_is_kept():
    up, weights = transposed("y", "x", 2, MIN_PHASE_CHANNELS)
    weights["scale"] = np.full((1, 1, 1, 1), 0.5)
    rewritten = split_transposed_convs(graph([up], weights, 2, ["y", "scale"]))
    onnx.checker.check_model(rewritten, full_check=True)
    assert "scale" in {init.name for init in rewritten.graph.initializer}
    assert run(rewritten, RNG.random((1, 2, 3, 3), dtype=np.float32))[1].tolist() == [[[[0.5]]]]


def test_three_layers_with_strides_2_and_3_give_the_same_output():
    first, w1 = transposed("a", "x", 2, MIN_PHASE_CHANNELS)
    second, w2 = transposed("b", "r", MIN_PHASE_CHANNELS, 3, kernel=5, stride=3, pad=1)  # 2 phases in, 6 out
    third, w3 = transposed("c", "b", 3, 2)
    nodes = [first, helper.make_node("Relu", ["a"], ["r"]), second, third]
    model = graph(nodes, w1 | w2 | w3, 2, ["c"])
    rewritten = split_transposed_convs(model)
    ops = [node.op_type for node in rewritten.graph.node]
    assert "ConvTranspose" not in ops and ops.count("DepthToSpace") == 1
    x = RNG.random((2, 2, 3, 2), dtype=np.float32)
    (expected,), (got,) = run(model, x), run(rewritten, x)
    assert got.shape == expected.shape == (2, 2, 36, 24)
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_random_chains_give_onnxruntimes_transposed_conv_output():
    rng = np.random.default_rng(1)  # seeded: 30 chains of 1–3 layers, strides 1–3, some rewritten, some not
    rewritten_count = 0
    for _ in range(30):
        channels, source, nodes, weights = int(rng.integers(1, 4)), "x", [], {}
        cin = channels
        for layer in range(int(rng.integers(1, 4))):
            stride, pad = int(rng.integers(1, 4)), int(rng.integers(0, 3))
            cout = int(rng.choice([1, 3, MIN_PHASE_CHANNELS, MIN_PHASE_CHANNELS + 1]))
            node, w = transposed(f"t{layer}", source, cin, cout, kernel=stride + 2 * pad, stride=stride, pad=pad)
            nodes.append(node)
            weights |= w
            source, cin = node.output[0], cout
            if rng.random() < 0.6:
                act = str(rng.choice(["Relu", "Sigmoid"]))
                nodes.append(helper.make_node(act, [source], [source + act]))
                source += act
        model = graph(nodes, weights, channels, [source])
        rewritten = split_transposed_convs(model)
        rewritten_count += rewritten is not model
        x = rng.random((2, channels, int(rng.integers(1, 6)), int(rng.integers(1, 6))), dtype=np.float32)
        (expected,), (got,) = run(model, x), run(rewritten, x)
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=1e-4 * max(1.0, float(np.abs(expected).max())))
    assert rewritten_count >= 5, rewritten_count
