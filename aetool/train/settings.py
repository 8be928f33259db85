"""The rules a training setting follows whatever the model, without PyTorch: ``aetool train`` checks the options
given on its command line here before PyTorch loads (5-8 s), and ``TrainConfig`` checks its resolved settings here
too, then the rules that need the model's registry entry."""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Mapping
from typing import Any

from aetool.runtime.anomaly import parse_classes
from aetool.runtime.metadata import DATASETS
from aetool.runtime.noise import NOISE_KINDS, Noise, check_level
from aetool.runtime.spec import MAX_CONV_PIXELS

DIGITS = tuple(str(label) for label in range(10))  # the labels of the IDX datasets
LOSSES = ("mse", "bce")
MAX_SEED = 2**32 - 1
AT_LEAST = {"batch_size": 1, "seed": 0, "limit": 1, "components": 1}  # epochs: at least 1 but for pca (0)


def option_of(name: str) -> str:
    """The command-line option of a setting: ``batch_size`` → ``--batch-size`` (``noise_mix``: ``--noise``, which
    takes a mix; ``model``: the MODEL argument)."""
    return {"model": "MODEL", "noise_mix": "--noise"}.get(name, f"--{name.replace('_', '-')}")


def split_noise(noise: Any, noise_mix: str | None, *, kind: str) -> tuple[Any, str, str | None]:
    """``TrainConfig``'s three noise settings ``(noise, noise_kind, noise_mix)`` for ``noise`` given as ``--noise``'s
    text: a number is one level of ``kind`` (``"0.5"`` → 0.5, checked later as a level is); other text is read by
    ``runtime.noise.Noise.parse``: one term at one level is that level of its kind (``"mask=0.25"`` → 0.25 and
    ``mask``; ``"gaussian=0"``: no noise, 0.0), anything else (a range ``"0:0.6"``, a mix) is ``noise_mix`` in
    Noise's spelling (``"gaussian=0:0.6"``). ``noise`` that is not text (a level, or None) comes back as it is, with
    ``kind`` and ``noise_mix``. Raises ``ValueError`` naming ``--noise`` for text that names no noise, for text beside
    a ``noise_mix`` (two noises), and for an unknown ``kind``."""
    if not isinstance(noise, str):
        return noise, kind, noise_mix
    if noise_mix is not None:
        raise ValueError("--noise is one level or a range/mix, not both")
    if kind not in NOISE_KINDS:
        raise ValueError(f"unknown noise kind {kind!r}; choose one of {', '.join(NOISE_KINDS)}")
    try:
        return float(noise), kind, None  # a number is a level: "-1" says "--noise must be 0 or more"
    except ValueError:
        pass
    try:
        parsed = Noise.parse(noise, default_kind=kind)
    except ValueError as err:
        raise ValueError(f"--noise: {err}") from None
    if not parsed:  # one term at level 0
        return 0.0, kind, None
    if parsed.level is not None:
        return parsed.level[0], parsed.level[1], None
    return None, kind, str(parsed)


def check_settings(settings: Mapping[str, Any]) -> None:
    """Refuse settings that cannot work for any model.

    ``settings`` maps ``TrainConfig``'s field names to values of its types (``size`` a (height, width) tuple,
    ``classes`` a tuple of labels or the command line's ``"1,7"``, ``noise`` a level or ``--noise``'s text, read by
    :func:`split_noise`); a missing name or ``None`` stands for the model's default and is not checked, ``dataset``
    ``""`` for ``images`` with ``data`` and ``mnist`` without.
    Raises ``ValueError`` naming the command-line option (``--lr must be a positive number, got -1.0``).
    """

    def given(name: str) -> Any:
        return settings.get(name)

    dataset = given("dataset") or ("images" if given("data") else "mnist")
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    if given("loss") is not None and given("loss") not in LOSSES:
        raise ValueError(f"unknown loss {given('loss')!r}; choose one of {', '.join(LOSSES)}")
    noise_kind = given("noise_kind") or "gaussian"
    if noise_kind not in NOISE_KINDS:
        raise ValueError(f"unknown noise kind {noise_kind!r}; choose one of {', '.join(NOISE_KINDS)}")
    device = given("device")
    if device is not None and device not in ("auto", "cpu", "cuda") and not re.fullmatch(r"cuda:\d+", device):
        raise ValueError(f"unknown device {device!r}; choose auto, cpu, cuda or cuda:N (a GPU's index)")
    for name, low in AT_LEAST.items():
        if given(name) is not None and given(name) < low:
            raise ValueError(f"{option_of(name)} must be at least {low}, got {given(name)}")
    if (given("seed") or 0) > MAX_SEED:  # torch.Generator takes 64-bit seeds, and the epochs' are derived from this one
        raise ValueError(f"--seed must be at most {MAX_SEED} (2^32 - 1), got {given('seed')}")
    if given("lr") is not None and not (math.isfinite(given("lr")) and given("lr") > 0):
        raise ValueError(f"--lr must be a positive number, got {given('lr')}")
    if given("l1") is not None and not (math.isfinite(given("l1")) and given("l1") >= 0):
        raise ValueError(f"--l1 must be 0 or more, got {given('l1')}")
    noise, noise_kind, noise_mix = split_noise(given("noise"), given("noise_mix"), kind=noise_kind)
    if noise is not None and not (math.isfinite(noise) and noise >= 0):
        raise ValueError(f"--noise must be 0 or more, got {noise}")
    try:
        check_level(noise or 0.0, noise_kind)
        if noise_mix is not None:
            Noise.parse(noise_mix, default_kind=noise_kind)
    except ValueError as err:
        raise ValueError(f"--noise: {err}") from None
    if noise_mix is not None and noise:
        raise ValueError("--noise is one level or a range/mix, not both")
    _check_data(settings, dataset=dataset)


def check_val(val: float) -> None:
    """Raise ``ValueError`` for a ``--val`` fraction outside (0, 1), 0 and 1 excluded, or no number (text was a
    comparison's TypeError; trial 100)."""
    if isinstance(val, bool) or not isinstance(val, numbers.Real) or not 0 < val < 1:
        raise ValueError(
            f"--val must be a fraction strictly between 0 and 1 (--val-data FOLDER gives validation images of their "
            f"own), got {val!r}"
        )


def _check_data(settings: Mapping[str, Any], *, dataset: str) -> None:
    """Refuse data options that do not go together."""
    data, val, val_data = settings.get("data"), settings.get("val"), settings.get("val_data")
    classes = parse_classes(settings.get("classes"))
    if dataset == "images" and not data:
        raise ValueError("--dataset images needs --data (a folder or glob of images)")
    if data and dataset != "images":
        raise ValueError(f"--data is a folder of images; --dataset {dataset} reads IDX files (--data-dir)")
    if data and settings.get("data_dir"):
        raise ValueError("--data (images) and --data-dir (IDX files) name two sources; give one")
    if classes is not None and dataset != "images" and not all(label in DIGITS for label in classes):
        raise ValueError(f"--classes of {dataset} are its labels 0 to 9, got {','.join(classes)}")
    if val_data and not data:
        raise ValueError("--val-data goes with images given with --data; IDX data has its own test split")
    if val is not None and not (data or classes):
        raise ValueError(
            "--val holds out images given with --data or picked by --classes; IDX data has its own test split"
        )
    if val is not None and val_data:
        raise ValueError("--val holds out a fraction and --val-data names a folder: give one")
    if val is not None:
        check_val(val)
    if settings.get("channels") not in (None, 1, 3):
        raise ValueError(f"--channels must be 1 (grey) or 3 (colour), got {settings.get('channels')}")
    size = settings.get("size")
    if size is not None and min(size) < 1:
        raise ValueError(f"--size must be positive, got {size[0]}x{size[1]}")
    if size is not None and size[0] * size[1] > MAX_CONV_PIXELS:  # resizing to it was a traceback (trial 72)
        raise ValueError(
            f"--size {size[0]}x{size[1]} is over {MAX_CONV_PIXELS:,} pixels, the largest image a model file may "
            "declare (4096x4096)"
        )
