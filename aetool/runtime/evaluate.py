"""Scores of an exported model with onnxruntime alone: MSE, PSNR and SSIM of its reconstructions against clean
targets, on three kinds of data.

- :func:`evaluate`: MNIST-style IDX files, noised as training noised its test set, so the MSE is the one training
  recorded.
- :func:`evaluate_images`: a folder (searched recursively) or glob of clean images, noised with a fixed seed.
- :func:`evaluate_pairs`: input images and their targets, two folders matched by path without suffix.

A set's MSE is the mean over all pixels of all images, its PSNR that of this MSE, its SSIM the mean over images
(``metrics.SetScores``). Images are carried into the model's world as the image commands carry them: converted
to its channels, inverted when the model is white-on-black and the image dark on light; an inverted image's
reconstruction and target are inverted back before they are scored, and a grey image a colour model took as RGB
is scored grey (the luma of its reconstruction), so the scores are those of the images as the image commands
write them (SSIM, unlike MSE, changes under inversion). IDX digits are scored in the model's channels, as
training scored its test set. Conv models score every
image whole at its own size; dense models images of their size, or with ``resize`` any image, fitted to their
size as ``aetool denoise --resize`` fits it (input and target alike, scored at the model's size). Images are read
a chunk at a time, so memory stays flat; an image that cannot be read is listed and the rest are still scored.
"""

from __future__ import annotations

import copy
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aetool.errors import AetoolError, DataError, ImageError, ModelFileError, checked_switch, no_memory_line
from aetool.runtime import contract, images
from aetool.runtime.batch import Prepared, Reconstruct, carry_in, checked_invert, chunks, cropped
from aetool.runtime.files import Failure, Input, collect_set
from aetool.runtime.idx import dataset_folder, load_split
from aetool.runtime.images import GREY_TO_RGB, read_image, to_channels
from aetool.runtime.metrics import SCORE_BATCH, SetScores
from aetool.runtime.model import Model, loaded, trained_noise
from aetool.runtime.noise import TEST_NOISE_SEED, Noise, checked_seed

INVERTED = "inverted (dark on light) for the model's white-on-black world"
RESIZED = "fitted to the model's size (--resize)"
GREY_IN = f"converted {GREY_TO_RGB}"  # a grey image a colour model took as RGB: scored grey, as denoise writes it


def checked_limit(limit: int | None) -> int | None:
    """``limit`` (how many images to take: the first ones; None for all) once checked: raises ``ValueError`` for one
    that is not a whole number ≥ 1 (a negative one would slice from the end, silently)."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int | np.integer) or limit < 1):
        raise ValueError(f"limit takes a whole number ≥ 1 or None, got {limit!r}")
    return limit


def counted(done: Counter[str], *, unit: str = "image") -> list[str]:
    """What was done to the images (``unit``: or to the pairs of input and target), a line per kind with its count:
    ``8 images converted grey → RGB (replicated)``."""
    return [f"{n} {unit}{'s' if n > 1 else ''} {what}" for what, n in done.items() if n]


@dataclass(frozen=True)
class Evaluation:
    """A model's scores and how they were measured; ``to_dict`` is ``aetool evaluate --json``."""

    mse: float  # mean over all pixels (and channels) of all images scored
    n: int  # images scored
    model: str  # the model's registry name (or file stem)
    file: str
    model_sha256: str  # of the file's bytes as loaded
    noise: float | None  # noise level added to the inputs (0: none; None for a mix, and for pairs, scored as given)
    noise_kind: str | None  # None for pairs and mixes
    seed: int | None  # of the input noise; None for pairs
    split: str | None  # the IDX split scored; None for images
    recorded_test_mse: float | None  # what the file's metadata records (a variant's own), for comparison
    seconds: float
    psnr: float | None = None  # dB, peak 1.0, of ``mse``; None when infinite (an MSE of 0)
    ssim: float | None = None  # mean over the images of at least 11×11 pixels; None when there were none
    ssim_images: int = 0  # how many images ``ssim`` is the mean over
    data: str = ""  # what was scored: the IDX folder, the folder or glob of images, or the folder of inputs
    targets: str | None = None  # the folder of targets, for pairs
    notes: list[str] = field(default_factory=list)  # what was done to the images, once per kind, with a count
    failed: list[Failure] = field(default_factory=list)  # images that could not be scored, and why
    input_mse: float | None = None  # the inputs themselves against the targets (noisy → clean), when they differ
    input_psnr: float | None = None  # dB, of ``input_mse``
    noise_mix: str | None = None  # the range or mix of kinds drawn per image, for a model trained on one
    missing: list[Failure] = field(default_factory=list)  # inputs without a target and targets without an input
    recorded_noise: str | None = None  # the noise ``recorded_test_mse`` was scored with, when it is not this one's
    input_ssim: float | None = None  # the inputs' mean SSIM against the targets (as ``ssim``), when they differ

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Run:
    """What a scoring run gathers as it goes."""

    scores: SetScores = field(default_factory=SetScores)
    inputs: SetScores = field(default_factory=SetScores)  # the model's inputs against the targets: the baseline
    failed: list[Failure] = field(default_factory=list)
    done: Counter[str] = field(default_factory=Counter)  # what was done to how many images


@dataclass(frozen=True)
class _Pair:
    label: str
    inputs: Prepared  # in the model's channels, polarity and size, padded as the model runs it
    target: np.ndarray  # C×H×W, the shape of the inputs' region (``batch.cropped``)
    done: tuple[str, ...]  # what was done to its images (notes, counted once the pair is scored)


def evaluate(
    model: Model | str | Path,
    data_dir: str | Path,
    *,
    dataset: str | None = None,
    noise: float | str | None = None,
    noise_kind: str | None = None,
    limit: int | None = None,
    seed: int | None = None,
    split: str = "test",
) -> Evaluation:
    """Scores of the model's reconstructions of (optionally noisy) images of an IDX ``split`` against the clean ones.
    ``model``: a loaded :class:`Model`, or a path or bundled name (as the other evaluations take it); ``data_dir``:
    a folder of the four IDX files, or one holding them in a subfolder named after ``dataset`` (``mnist``,
    ``fashion-mnist``; default: the model's, else ``mnist``), whose test images must be that dataset's (a model of
    digits scored on Fashion-MNIST gave an MSE without a word, as ``aetool evaluate`` refuses it).

    ``noise``: a level of ``noise_kind``, or text as train's ``--noise`` takes it (a range ``0:0.6`` or a mix
    ``gaussian=0:0.6,mask=0.2``, drawn per image); None uses the noise the model was trained with, as its metadata
    records it, so a denoising model is scored the way it was trained: ``seed`` None corrupts the test set as
    training did (``TEST_NOISE_SEED``, one draw over the whole set), so the MSE is the one training recorded.
    ``limit`` scores only the first images. A colour model gets the grey digits replicated, then noised. Raises
    ``AetoolError`` for noise that means nothing, ``DataError`` for a folder without readable IDX files or images
    the model cannot take, ``ModelFileError`` for a model that fails or has broken noise metadata, ``ValueError``
    for a ``limit`` under 1, a ``split`` other than ``train`` and ``test`` or a ``dataset`` other than ``mnist``
    and ``fashion-mnist``.
    """
    started = time.perf_counter()
    model = loaded(model)
    corruption = _noise(model, noise, noise_kind)
    checked_seed(seed)
    seed = TEST_NOISE_SEED if seed is None else seed
    data_dir = dataset_folder(data_dir, dataset, recorded=model.metadata.get(contract.DATASET))
    pixels, _ = load_split(data_dir, split)
    pixels = pixels[: checked_limit(limit)]
    try:  # a model of one size takes only that size; one of any size takes them padded to its multiple
        model.input_spec.check(*model.input_spec.padded(*pixels.shape[1:], tiled=True))
    except ValueError as err:
        raise DataError(f"{model.path.name} cannot score {data_dir}: {err}") from None
    clean, converted = to_channels(pixels[:, None].astype(np.float32) / 255, model.input_spec.channels)
    inputs = corruption.apply(clean, np.random.default_rng(seed))  # as training drew it
    run = _Run()
    if converted:
        run.done[f"converted {converted}"] = len(clean)
    step = Reconstruct(model, noted=False)
    for start in range(0, len(clean), SCORE_BATCH):
        fed = [step.prepare(image) for image in inputs[start : start + SCORE_BATCH]]
        run.scores.add(_reconstructions(step, fed), clean[start : start + SCORE_BATCH])
        run.inputs.add(inputs[start : start + SCORE_BATCH], clean[start : start + SCORE_BATCH])
    return _result(model, run, started, data=str(data_dir), noise=(corruption, seed), split=split)


def evaluate_images(
    model: Model | str | Path,
    data: str,
    *,
    noise: float | str | None = None,
    noise_kind: str | None = None,
    limit: int | None = None,
    seed: int | None = None,
    resize: bool = False,
    invert: bool | None = None,
) -> Evaluation:
    """Scores of the model's reconstructions of noisy copies of the clean images in a folder (searched
    recursively), a glob or a file, against the clean images.

    The images are taken in the order of their sorted paths, the first ``limit`` of them. ``noise`` (a level, or a
    range or mix as text, as :func:`evaluate` takes it) None uses the
    noise the model was trained with; it is drawn image by image, after the image is converted to the model's
    channels and polarity, from one generator seeded with ``seed`` (None: ``TEST_NOISE_SEED``), so a run gives the
    same inputs every time. ``resize`` fits images of another size to a dense model's (the clean image, then noised);
    ``invert`` True or False inverts every image for a white-on-black model, or none, as ``--invert``/``--no-invert``
    do (None: dark-on-light images, by their border). An image that cannot be read, or is not of a dense model's
    size (without ``resize``), is one of the result's ``failed``, and the others are scored. Raises ``DataError``
    when ``data`` holds no images, ``ImageError`` when none could be scored, what :func:`evaluate` raises for noise,
    models and ``limit``, ``TypeError`` for a ``resize`` or ``invert`` that is not True or False (or None, for
    ``invert``) and ``ValueError`` for ``invert`` True with a model that takes images as they are.
    """
    started = time.perf_counter()
    resize = checked_switch(resize, name="resize")
    model = loaded(model)
    step = Reconstruct(model, resize=resize, noted=False)
    invert = checked_invert(invert, step)
    corruption = _noise(model, noise, noise_kind)
    checked_seed(seed)
    seed = TEST_NOISE_SEED if seed is None else seed
    found = collect_set(data, named=f"--data {data}")
    run = _Run()
    _score(step, _noisy(step, found[: checked_limit(limit)], run, noise=corruption, seed=seed, invert=invert), run)
    return _result(model, run, started, data=data, noise=(corruption, seed))


def evaluate_pairs(
    model: Model | str | Path,
    inputs: str,
    targets: str,
    *,
    limit: int | None = None,
    resize: bool = False,
    invert: bool | None = None,
) -> Evaluation:
    """Scores of the model's reconstructions of the images in ``inputs`` against their partners in ``targets``.

    Both are folders (searched recursively) or globs; an input and a target pair up when their paths below the
    folder (or the glob's folder) are the same without the suffix, so ``noisy/a/x.png`` pairs with
    ``clean/a/x.jpg`` (two files given as such pair with each other). An input without a target and a target
    without an input are listed in ``missing``; two files of one name in one folder, pairs of two sizes and
    unreadable images in ``failed``; the others are scored, the first ``limit`` pairs in the order of the inputs'
    paths. ``resize`` fits both images of a pair of another size to a dense model's; ``invert`` as
    :func:`evaluate_images` takes it, judged on the input. A pair not of a dense model's size (without ``resize``)
    is in ``failed`` too. Raises ``DataError`` when a side holds no images or no input has a target, ``ImageError``
    when no pair could be scored, ``ValueError`` for a ``limit`` under 1 and ``invert`` True with a model that takes
    images as they are, ``TypeError`` for a ``resize`` or ``invert`` that is not True or False (or None, for
    ``invert``).
    """
    started = time.perf_counter()
    resize = checked_switch(resize, name="resize")
    model = loaded(model)
    step = Reconstruct(model, resize=resize, noted=False)
    invert = checked_invert(invert, step)
    run = _Run()
    sides = []
    for option, where in (("--inputs", inputs), ("--targets", targets)):
        sides.append(_by_name(collect_set(where, named=f"{option} {where}"), run.failed))
    named_inputs, named_targets = sides
    matched = [
        (item, target)
        for name, item in named_inputs.items()
        if item is not None and (target := named_targets.get(name)) is not None
    ]
    if not matched:
        raise DataError(
            f"no image in {inputs} has a partner in {targets}; pairs are matched by their path below the folder "
            "without the suffix (noisy/a/x.png ↔ clean/a/x.jpg)"
        )
    missing = [
        Failure(item.label, f"no target in {targets} matches it")
        for name, item in named_inputs.items()
        if item is not None and name not in named_targets
    ]
    missing += [
        Failure(item.label, f"no input in {inputs} matches it")
        for name, item in named_targets.items()
        if item is not None and name not in named_inputs
    ]
    for side, other, where in ((named_inputs, named_targets, targets), (named_targets, named_inputs, inputs)):
        run.failed += [  # its partner's name is two images' (each failed): it went unnamed (a trial)
            Failure(item.label, f"cannot be paired: two images in {where} have its name without the suffix")
            for name, item in side.items()
            if item is not None and name in other and other[name] is None
        ]
    _score(step, _given(step, matched[: checked_limit(limit)], run, invert=invert), run)
    return _result(model, run, started, data=inputs, targets=targets, missing=missing)


def _noise(model: Model, noise: float | str | None, noise_kind: str | None) -> Noise:
    """The noise to add: the level and kind asked for (or a range or mix as text, as train's ``--noise`` takes it,
    ``noise_kind`` the kind of its terms that name none), else the model's own (a kind alone takes the model's level);
    an unknown kind, a level that means nothing, or a kind alone for a model trained on a mix or without noise (it
    added none, and the result said gaussian; trial 100) is an ``AetoolError``."""
    trained = trained_noise(model)
    if noise is None and noise_kind is None:
        return trained
    if noise is None and trained.level is None and trained:
        raise AetoolError(f"--noise-kind needs --noise: {model.name} was trained on the noise mix {trained}")
    if noise is None and not trained:
        raise AetoolError(f"--noise-kind needs --noise: {model.name} was trained without noise")
    if isinstance(noise, str):
        try:
            return Noise.parse(noise, default_kind=noise_kind or (trained.level or (0.0, "gaussian"))[1])
        except ValueError as err:
            raise AetoolError(f"--noise: {err}") from None
    level = noise if noise is not None else (trained.level or (0.0, "gaussian"))[0]
    kind = noise_kind or (trained.level or (0.0, "gaussian"))[1]
    try:
        return Noise.single(level, kind=kind)
    except ValueError as err:
        raise AetoolError(f"--noise: {err}") from None


def _by_name(found: list[Input], failed: list[Failure]) -> dict[str, Input | None]:
    """Images by their path below their folder without the suffix (``""`` for a file given as such). Two images of
    one name both fail, since it cannot be told which one to pair (the first was paired, the second failed: which
    one was scored depended on the order; a trial), and their name maps to None."""
    groups: dict[str, list[Input]] = {}
    for item in found:
        source, root = item.source, item.root
        name = source.relative_to(root).with_suffix("").as_posix() if isinstance(source, Path) and root else ""
        groups.setdefault(name, []).append(item)
    named: dict[str, Input | None] = {}
    for name, items in groups.items():
        if len(items) == 1:
            named[name] = items[0]
            continue
        named[name] = None
        for item in items:
            others = [other.label for other in items if other is not item]
            failed.append(
                Failure(
                    item.label,
                    f"cannot be paired: {', '.join(others)} {'has' if len(others) == 1 else 'have'} the same name "
                    "without the suffix",
                )
            )
    return named


def _read(item: Input, run: _Run) -> images.Decoded | None:
    """An image as ``images.read_image`` decodes it, or None when it cannot be read (then it is listed)."""
    try:
        return read_image(item.source)
    except ImageError as err:
        run.failed.append(Failure(item.label, str(err)))
    except MemoryError as err:  # decoding a large image under a memory limit: it alone fails
        run.failed.append(Failure(item.label, no_memory_line(err)))
    return None


def _carried(step: Reconstruct, decoded: images.Decoded, *, invert: bool | None) -> tuple[np.ndarray, tuple[str, ...]]:
    """An image carried into the model's channels and polarity as the image commands carry it (``batch.carry_in``),
    and what was done to it: ``INVERTED``, ``converted …``."""
    pixels, converted, flip = carry_in(decoded.pixels, step, invert=invert, stored_colour=decoded.stored_colour)
    return pixels, (INVERTED,) * flip + (f"converted {converted}",) * bool(converted)


def _noisy(
    step: Reconstruct, found: list[Input], run: _Run, *, noise: Noise, seed: int, invert: bool | None
) -> Iterator[_Pair]:
    """Noisy inputs and their clean targets, read as they are asked for, noise drawn image by image onto the clean
    image at the model's size (a dense model's, fitted with ``--resize``; a conv model's own), then padded."""
    rng = np.random.default_rng(seed)
    for item in found:
        decoded = _read(item, run)
        if decoded is None:
            continue
        pixels, done = _carried(step, decoded, invert=invert)
        try:
            sized = step.prepare(pixels)
        except ImageError as err:  # a size the model does not take: this image fails, the others are scored
            run.failed.append(Failure(item.label, str(err)))
            continue
        clean = cropped(sized.pixels, sized)
        # a grey image a colour model takes is noised grey, then replicated, as add-noise noises the grey file that
        # denoise then reads: noise drawn per channel lost a third of its σ in the luma scored (trial 103)
        grey = GREY_IN in done
        noisy = noise.apply(clean[:1][None] if grey else clean[None], rng)[0]
        fed = step.prepare(np.repeat(noisy, 3, axis=0) if grey else noisy)
        yield _Pair(item.label, fed, clean, done + (RESIZED,) * (sized.restore is not None))


def _given(step: Reconstruct, matched: list[tuple[Input, Input]], run: _Run, *, invert: bool | None) -> Iterator[_Pair]:
    """Inputs and targets as given, read as they are asked for; both inverted when the input is, and fitted alike
    to a dense model's size with ``--resize``."""
    for source, target in matched:
        inputs, wanted = _read(source, run), _read(target, run)
        if inputs is None or wanted is None:
            continue
        if inputs.pixels.shape[1:] != wanted.pixels.shape[1:]:
            (height, width), (target_height, target_width) = inputs.pixels.shape[1:], wanted.pixels.shape[1:]
            run.failed.append(
                Failure(
                    source.label,
                    f"{width}×{height} (width×height), but its target {target.label} is {target_width}×{target_height}",
                )
            )
            continue
        pixels, done_to_input = _carried(step, inputs, invert=invert)
        clean, done = _carried(step, wanted, invert=INVERTED in done_to_input)
        try:  # input and target have one size (above): a size the model does not take fails the pair alone
            placed = step.prepare(clean)
            fed = step.prepare(pixels, like=placed.fitted)
        except ImageError as err:
            run.failed.append(Failure(source.label, str(err)))
            continue
        resized = (RESIZED,) * (placed.restore is not None)
        done_to_pair = tuple(dict.fromkeys(done_to_input + done + resized))  # each kind once a pair
        yield _Pair(source.label, fed, cropped(placed.pixels, placed), done_to_pair)


def _reconstructions(step: Reconstruct, fed: list[Prepared]) -> np.ndarray:
    """The model's N×C×H×W float32 reconstructions of N images prepared by ``step`` to one shape (padded: any sizes
    whose padding matches; run in tiles when large), each cropped to its own region, which must be of one shape.
    Raises what ``Model.reconstruct`` raises."""
    results = step.run(np.stack([prepared.pixels for prepared in fed]))
    return np.stack([cropped(result, prepared) for result, prepared in zip(results, fed, strict=True)])


def _score(step: Reconstruct, pairs: Iterable[_Pair], run: _Run) -> None:
    """Reconstruct the inputs a chunk at a time, those of one shape together (``step.run``: in tiles when large), and
    add their scores against the targets to ``run``: as the image commands write them, padding cut off, inverted
    back, and grey again (the luma of the RGB) for a grey image a colour model took as RGB."""
    for chunk in chunks(pairs, lambda pair: pair.inputs.pixels.size + pair.target.size):
        groups: dict[tuple[tuple[int, ...], tuple[int, ...], bool], list[_Pair]] = {}
        for pair in chunk:
            groups.setdefault((pair.inputs.pixels.shape, pair.target.shape, GREY_IN in pair.done), []).append(pair)
        for (_, _, grey), group in groups.items():
            kept = copy.copy(run.scores), copy.copy(run.inputs)
            try:
                outputs = _reconstructions(step, [pair.inputs for pair in group])
                inputs = np.stack([cropped(pair.inputs.pixels, pair.inputs) for pair in group])
                targets = np.stack([pair.target for pair in group])
                flip = np.array([INVERTED in pair.done for pair in group]).reshape(-1, 1, 1, 1)
                if flip.any():  # inverted back: SSIM of 1 − x is not SSIM of x (MSE and PSNR are the same)
                    outputs, inputs, targets = (np.where(flip, 1 - a, a) for a in (outputs, inputs, targets))
                if grey:  # scored in RGB, it counted the colour that denoise's grey output does not hold (trial 101)
                    outputs, inputs, targets = (to_channels(a, 1)[0] for a in (outputs, inputs, targets))
                run.scores.add(outputs, targets)
                run.inputs.add(inputs, targets)
            except (MemoryError, ModelFileError) as err:  # out of memory (the model's or numpy's), or the model
                # failed on images of this shape (a size its strides do not take): these fail, the others count
                run.scores, run.inputs = kept
                reason = str(err) if isinstance(err, AetoolError) else no_memory_line(err)
                run.failed.extend(Failure(pair.label, reason) for pair in group)
                continue
            for pair in group:
                run.done.update(pair.done)


def _result(
    model: Model,
    run: _Run,
    started: float,
    *,
    data: str,
    noise: tuple[Noise, int] | None = None,
    split: str | None = None,
    targets: str | None = None,
    missing: list[Failure] | None = None,
) -> Evaluation:
    """The Evaluation of a finished run (``noise``: the noise and its seed; None for pairs); ``ImageError`` when it
    scored nothing."""
    if not run.scores.images:
        first = f"; the first: {run.failed[0].label}: {run.failed[0].error}" if run.failed else ""
        raise ImageError(f"no image could be scored{first}")
    corruption, seed = noise or (None, None)
    level: float | None
    if corruption is None:  # pairs: scored as given, no noise added and none to name
        level, kind = None, None
    elif not corruption:
        level, kind = 0.0, "gaussian"
    else:
        level, kind = corruption.level or (None, None)
    recorded = contract.recorded_test_mse(model.metadata)  # an fp16/int8 file's own
    trained = trained_noise(model)  # the recorded MSE's noise (over the run's own test images)
    recorded_noise = (str(trained) if trained else "none") if trained is not None and trained != corruption else None
    psnr = run.scores.psnr
    baseline = run.inputs.mse if run.inputs.values and run.inputs.squared > 0 else None  # None: inputs = targets
    return Evaluation(
        mse=run.scores.mse,
        n=run.scores.images,
        model=model.name,
        file=str(model.path),
        model_sha256=model.sha256,
        noise=level,
        noise_kind=kind,
        noise_mix=str(corruption) if corruption and corruption.level is None else None,
        seed=seed,
        split=split,
        recorded_test_mse=recorded,
        recorded_noise=recorded_noise if isinstance(recorded, (int, float)) else None,
        seconds=round(time.perf_counter() - started, 3),
        psnr=psnr if np.isfinite(psnr) else None,
        ssim=run.scores.ssim,
        ssim_images=run.scores.ssim_images,
        data=data,
        targets=targets,
        notes=counted(run.done, unit="image" if targets is None else "pair"),
        failed=run.failed,
        missing=missing or [],
        input_mse=baseline,
        input_psnr=float(run.inputs.psnr) if baseline is not None else None,
        input_ssim=run.inputs.ssim if baseline is not None else None,
    )
