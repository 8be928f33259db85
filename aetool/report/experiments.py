"""The report's experiments, one function per section: the numbers and the sample images each figure shows.

Inference goes through :class:`~aetool.report.inference.Engine` (ONNX + runtime where exported); weights and
filters come from the torch models. Everything random is seeded, so two reports of the same runs agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from aetool.models import DenseAE
from aetool.report.inference import Engine, mse
from aetool.report.runs import QUICK_LIMIT
from aetool.runtime.metrics import SCORE_BATCH, SetScores
from aetool.runtime.noise import add_noise
from aetool.train.data import load_images, to_float

SEED = 0
PCA_COMPONENTS = 30
NOISE_LEVELS = (0.3, 0.5, 0.8, 0.9)
SHALLOW = ("ae64", "ae128", "ae256")
CONV = ("conv-unpool", "conv-unpool-deconv", "conv-deconv")
NOISE_INPUTS = 200  # uniform-noise images whose outputs are measured in §2
CODE_STEP = 0.35  # each random step in the deep AE's code space, as a fraction of the code's spread per unit


@dataclass(frozen=True)
class Budget:
    """How much data the experiments look at: everything for the report, a little for a quick demo."""

    samples: int  # test digits per grid
    filters: int  # filters shown per model
    walks: int  # random walks averaged in §5
    steps: int  # random steps per walk
    neighbours: int  # training digits searched for the nearest one
    test_images: int | None  # test images scored (None: all)
    train_images: int | None  # training images for the torch.svd check and the neighbour search (None: all)


FULL = Budget(samples=10, filters=16, walks=200, steps=8, neighbours=5000, test_images=None, train_images=None)
QUICK = Budget(
    samples=8, filters=16, walks=50, steps=6, neighbours=1000, test_images=QUICK_LIMIT, train_images=QUICK_LIMIT
)


@dataclass
class Data:
    """Images as N×28×28 float32 in [0, 1]."""

    train: np.ndarray
    test: np.ndarray

    def samples(self, budget: Budget) -> np.ndarray:
        return self.test[: budget.samples]


def load_data(dataset: str, data_dir: str | None, budget: Budget) -> Data:
    """The splits the experiments use, read by the loader training uses."""

    def split(name: str, limit: int | None) -> np.ndarray:
        return to_float(load_images(dataset, name, data_dir=data_dir)[:limit])[:, 0].numpy()

    return Data(split("train", budget.train_images), split("test", budget.test_images))


def clean_scores(engines: dict[str, Engine], data: Data) -> dict[str, SetScores]:
    """Every model's test MSE, PSNR and SSIM on clean digits, measured through the runtime: the report's main
    numbers."""
    scores = {}
    for name, engine in engines.items():
        scores[name] = SetScores()
        for start in range(0, len(data.test), SCORE_BATCH):
            batch = data.test[start : start + SCORE_BATCH]
            scores[name].add(engine.reconstruct(batch), batch)
    return scores


def unit_activity(engine: Engine, images: np.ndarray) -> np.ndarray:
    """Mean |activation| of every code unit over ``images``."""
    codes = engine.encode(images)
    return np.abs(codes.reshape(len(codes), -1)).mean(0)


def top_filters(engine: Engine, activity: np.ndarray, count: int) -> np.ndarray:
    """Encoder filters (28×28 input weights) of the ``count`` most active hidden units, most active first."""
    units = np.argsort(activity)[::-1][:count]
    net = engine.net
    if not isinstance(net, DenseAE):
        raise TypeError(f"{engine.name} has no dense encoder filters")
    return net.encoder_filters()[:, 0].numpy()[units]


# ---- §1 PCA vs autoencoder ----


@dataclass
class PcaResult:
    """PCA against the deep AE (§1): test MSE of each, with the SVD check of the report's PCA number, and sample reconstructions."""

    originals: np.ndarray
    pca: np.ndarray
    deep: np.ndarray
    mse: dict[str, float]  # pca (clamped), pca_linear, svd_columns, svd_rows, mean_image, deep


def svd_check(data: Data, *, components: int = PCA_COMPONENTS) -> dict[str, float]:
    """Test MSE of PCA from ``torch.svd``'s V used right (its columns) and wrong (its rows), and of the mean image.

    The report's 0.0593 is far above the PCA optimum; projecting on rows of V instead of columns (orthonormal
    directions unrelated to the data) lands next to the mean image alone, which is where 0.0593 sits.
    """
    train, test = (torch.from_numpy(x.reshape(len(x), -1)).double() for x in (data.train, data.test))
    mean = train.mean(0)
    # torch.svd's V (784×784, principal directions as columns); full_matrices only when there are fewer images
    # than pixels, where the thin V would lack rows (and U is small anyway).
    v = torch.linalg.svd(train - mean, full_matrices=len(train) < train.shape[1]).Vh.mT

    def projected(basis: torch.Tensor) -> float:
        centred = test - mean
        return float(((centred @ basis.T @ basis - centred) ** 2).mean())

    return {
        "svd_columns": projected(v[:, :components].T),
        "svd_rows": projected(v[:components]),
        "mean_image": float(((test - mean) ** 2).mean()),
    }


def pca_vs_autoencoder(engines: dict[str, Engine], data: Data, scores: dict[str, float], budget: Budget) -> PcaResult:
    """The numbers and images of §1: PCA-30 and the deep AE on the same test digits, and why the report's 0.0593 is not the PCA optimum."""
    samples = data.samples(budget)
    linear = engines["pca"].run.history[-1].get("test_mse_unclamped")
    numbers = {"pca": scores["pca"], "deep": scores["deep"], **svd_check(data)}
    numbers["pca_linear"] = linear if linear is not None else numbers["svd_columns"]
    return PcaResult(samples, engines["pca"].reconstruct(samples), engines["deep"].reconstruct(samples), numbers)


# ---- §2 hidden sizes ----


@dataclass
class HiddenResult:
    """The shallow AEs of §2 on test digits and on uniform noise: reconstructions, test MSE, output brightness."""

    originals: np.ndarray
    outputs: dict[str, np.ndarray]
    noise: np.ndarray  # uniform random inputs
    noise_outputs: dict[str, np.ndarray]
    noise_brightness: dict[str, tuple[float, float]]  # model → mean output on noise (central 14×14, the rest)
    mse: dict[str, float]


def centre_and_rest(images: np.ndarray) -> tuple[float, float]:
    """Mean pixel value in the central 14×14 square and in the border around it."""
    centre = np.zeros(images.shape[-2:], bool)
    centre[7:21, 7:21] = True
    return float(images[:, centre].mean()), float(images[:, ~centre].mean())


def hidden_sizes(engines: dict[str, Engine], data: Data, scores: dict[str, float], budget: Budget) -> HiddenResult:
    """The numbers and images of §2: ae64/128/256 on test digits and on uniform-noise inputs."""
    samples = data.samples(budget)
    noise = np.random.default_rng(SEED).random((NOISE_INPUTS, 28, 28), dtype=np.float32)
    on_noise = {name: engines[name].reconstruct(noise) for name in SHALLOW}
    return HiddenResult(
        samples,
        {name: engines[name].reconstruct(samples) for name in SHALLOW},
        noise[: budget.samples],
        {name: out[: budget.samples] for name, out in on_noise.items()},
        {name: centre_and_rest(out) for name, out in on_noise.items()},
        {name: scores[name] for name in SHALLOW},
    )


# ---- §3 sparse AE ----


@dataclass
class SparseResult:
    """The sparse AE of §3 beside the shallow ones: mean hidden activation, reconstructions and encoder filters."""

    originals: np.ndarray
    sparse: np.ndarray
    mean_activation: dict[str, float]  # mean |code| on the test set
    filters: dict[str, np.ndarray]  # most active units first


def sparsity(engines: dict[str, Engine], data: Data, budget: Budget) -> SparseResult:
    """The numbers and images of §3: mean |activation| of each hidden layer over the test set, filters of the most active units."""
    samples = data.samples(budget)
    models = ("sparse", *SHALLOW)
    activity = {name: unit_activity(engines[name], data.test) for name in models}
    return SparseResult(
        samples,
        engines["sparse"].reconstruct(samples),
        {name: float(activity[name].mean()) for name in models},
        {name: top_filters(engines[name], activity[name], budget.filters) for name in models},
    )


# ---- §4 denoising ----


@dataclass
class DenoiseResult:
    """The denoising experiment of §4: noisy inputs, outputs and the test-MSE matrix (models × noise levels)."""

    originals: np.ndarray
    noisy: dict[float, np.ndarray]  # level → noisy samples
    outputs: dict[float, dict[str, np.ndarray]]  # level → model → outputs on the noisy samples
    mse: dict[str, dict[float, float]]  # model → level → test MSE against the clean digits
    input_mse: dict[float, float]  # level → MSE of the noisy input itself
    filters: dict[str, np.ndarray]


def denoising(engines: dict[str, Engine], data: Data, budget: Budget) -> DenoiseResult:
    """The numbers and images of §4: Gaussian noise at each level through the shallow AEs and the denoising AE."""
    models = (*SHALLOW, "denoise-dense")
    samples = data.samples(budget)
    noisy, outputs, input_mse = {}, {}, {}
    matrix: dict[str, dict[float, float]] = {name: {} for name in models}
    for index, level in enumerate(NOISE_LEVELS):
        corrupted = add_noise(data.test, level, kind="gaussian", rng=np.random.default_rng([SEED, index]))
        noisy[level] = corrupted[: budget.samples]
        outputs[level] = {name: engines[name].reconstruct(noisy[level]) for name in models}
        input_mse[level] = float(np.square(corrupted - data.test, dtype=np.float64).mean())
        for name in models:
            matrix[name][level] = mse(engines[name], corrupted, data.test)
    filters = {
        name: top_filters(engines[name], unit_activity(engines[name], data.test), budget.filters)
        for name in ("denoise-dense", *SHALLOW)  # as the report's Fig. 15: AE-64, AE-128, AE-256 below it
    }
    return DenoiseResult(samples, noisy, outputs, matrix, input_mse, filters)


# ---- §5 manifold ----


@dataclass
class ManifoldResult:
    """The manifold walk of §5: pixel-space and code-space walks and their distances to the nearest training digit."""

    pixel_walks: np.ndarray  # walks × (steps + 1) × 28 × 28, step 0 = the test digit
    code_walks: np.ndarray  # the same in code space, decoded; step 0 = the digit's reconstruction
    pixel_sigma: float  # std of a pixel step
    distances: dict[str, tuple[float, float]]  # row → (mean distance moved, mean distance to nearest training digit)
    neighbours: int
    decoder_backend: str


def nearest_distance(images: np.ndarray, references: np.ndarray) -> np.ndarray:
    """Euclidean distance (pixels in [0, 1]) from each image to its nearest reference image."""
    a = images.reshape(len(images), -1).astype(np.float64)
    b = references.reshape(len(references), -1).astype(np.float64)
    squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.maximum(squared.min(1), 0))


def _moved(walks: np.ndarray) -> float:
    return float(np.linalg.norm((walks[:, -1] - walks[:, 0]).reshape(len(walks), -1), axis=1).mean())


def _pixel_walk(starts: np.ndarray, sigma: float, steps: int) -> np.ndarray:
    """Random steps of N(0, sigma²) per pixel, kept to valid images (clipped to [0, 1]) after each step."""
    rng = np.random.default_rng([SEED, 5])
    path = [starts]
    for _ in range(steps):
        path.append(np.clip(path[-1] + sigma * rng.standard_normal(starts.shape, dtype=np.float32), 0, 1))
    return np.stack(path, 1)


def manifold(deep: Engine, data: Data, budget: Budget) -> ManifoldResult:
    """Random walks from test digits: in pixel space, and in the deep AE's code space decoded to pixels.

    The pixel walk's step size is set so that it travels as far (in pixels) as the code walk; what differs is
    where it ends: far from every training digit, while the code walk stays among them.
    """
    starts = data.test[: budget.walks]
    codes = deep.encode(starts)
    spread = CODE_STEP * codes.std(0)
    rng = np.random.default_rng([SEED, 4])
    path = [codes]
    for _ in range(budget.steps):
        path.append(path[-1] + spread * rng.standard_normal(codes.shape, dtype=np.float32))
    code_walks = np.stack([deep.decode(step) for step in path], 1)
    target = _moved(code_walks)
    sigma = target / np.sqrt(budget.steps * starts[0].size)
    sigma *= target / _moved(_pixel_walk(starts, sigma, budget.steps))  # clipping shortens the walk: rescale once
    pixel_walks = _pixel_walk(starts, sigma, budget.steps)
    references = data.train[: budget.neighbours]

    def nearest(images: np.ndarray) -> float:
        return float(nearest_distance(images, references).mean())

    distances = {
        "test digits (not moved)": (0.0, nearest(starts)),
        "their deep-AE reconstructions (not moved)": (0.0, nearest(code_walks[:, 0])),
        f"pixel-space walk, {budget.steps} steps": (_moved(pixel_walks), nearest(pixel_walks[:, -1])),
        f"code-space walk, {budget.steps} steps": (target, nearest(code_walks[:, -1])),
    }
    return ManifoldResult(pixel_walks, code_walks, float(sigma), distances, len(references), deep.decoder_backend)


# ---- §6 convolutional AEs ----


@dataclass
class ConvResult:
    """The convolutional AEs of §6: reconstructions, test MSE, training curves, widths and decoder kernels."""

    originals: np.ndarray
    outputs: dict[str, np.ndarray]
    mse: dict[str, float]
    histories: dict[str, list[dict]]
    channels: dict[str, tuple[int, int]]
    kernels: dict[str, list[tuple[str, np.ndarray]]]  # model → [(layer, out×in×k×k weights)]


def decoder_kernels(model: nn.Module) -> list[tuple[str, np.ndarray]]:
    """Each decoder layer's kernels as out×in×k×k, inner layer first (a transposed conv stores them in×out)."""
    kernels = []
    for name in ("dec2", "dec1"):
        layer = getattr(model, name)
        weight = layer.weight.detach()
        if isinstance(layer, nn.ConvTranspose2d):
            weight = weight.transpose(0, 1)
        kernels.append(
            (f"{name} ({type(layer).__name__}, {weight.shape[1]}→{weight.shape[0]} channels)", weight.numpy())
        )
    return kernels


def convolutional(engines: dict[str, Engine], data: Data, scores: dict[str, float], budget: Budget) -> ConvResult:
    """The numbers and images of §6: the three upsampling methods on the same test digits."""
    samples = data.samples(budget)
    return ConvResult(
        samples,
        {name: engines[name].reconstruct(samples) for name in CONV},
        {name: scores[name] for name in CONV},
        {name: engines[name].run.history for name in CONV},
        {name: tuple(engines[name].run.config.arch["widths"]) for name in CONV},
        {name: decoder_kernels(engines[name].net) for name in CONV},
    )
