"""Training configuration: one dataclass, defaults from the model registry, validated in one place."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from numbers import Integral, Real
from typing import Any

from aetool.errors import AetoolError
from aetool.models import ConvAE, build_model, get_spec
from aetool.runtime import contract
from aetool.runtime.anomaly import parse_classes
from aetool.runtime.files import full_path
from aetool.runtime.images import parse_size
from aetool.runtime.noise import Noise
from aetool.train.settings import check_settings, option_of, split_noise

# The fraction of the images held out when neither --val nor --val-data is given. A one-class run holds out more:
# its held-out images set the detector's threshold, and 10 % (about 600 MNIST digits) left six images above a 1 %
# threshold: the false-positive rate on the test digits of MNIST class 2 came out at 2.33 %, 1.55 % with 20 %.
DEFAULT_VAL = 0.1
ONE_CLASS_VAL = 0.2
# What a setting is when neither the command line nor the model's registry entry gives it.
GENERIC = {"epochs": 10, "batch_size": 128, "lr": 1e-3, "loss": "mse", "l1": 0.0, "noise": 0.0}
# pca is fitted in closed form on clean images: these settings do not apply to it. Round-1 runs stored these values
# for it, which stand for none.
PCA_INERT = {"epochs": 0, "lr": 1e-3, "loss": "mse", "batch_size": 128, "l1": 0.0, "noise": 0.0, "noise_mix": None}
LEGACY_KEYS = ("out",)  # keys of round-1 run folders that are no longer settings (the run folder is not one)
PATHS = ("data_dir", "data", "val_data")  # text settings that may be given as a Path too


def _is_int(value: Any) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


@dataclass
class TrainConfig:
    """Every setting of a training run. ``None`` means the model's default (its registry entry, else ``GENERIC``).

    Construction resolves the defaults and checks every setting's kind and value and how they go together;
    whether the data are there and fit the model, and the device exists, :func:`~aetool.train.train` checks
    before it makes the run folder.
    ``size`` and ``classes`` also take the command line's text (``"28x28"``, ``"1,7"``) or a list, and become
    tuples; ``noise`` also takes ``--noise``'s text (``"0.5"``, ``"0:0.6"``, ``"gaussian=0:0.6,mask=0.2"``), which
    becomes the settings a run records: one level (``noise`` and ``noise_kind``) or a range or mix (``noise_mix``;
    ``settings.split_noise``). Whole-number settings must be integers and the others numbers (not bools or text).
    Raises ``ValueError`` with a message naming the command-line option (``--lr``) for a setting that cannot work,
    and for an unknown model (naming the known ones). For ``pca`` the training settings stay ``None`` (and
    ``epochs`` 0): it is fitted, not trained, so asking for any of them is refused.
    """

    model: str
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    loss: str | None = None
    l1: float | None = None
    noise: float | None = None  # one level of ``noise_kind`` (given as --noise's text too: see the docstring)
    noise_kind: str = "gaussian"
    noise_mix: str | None = None  # or a range or mix of kinds drawn per image (runtime.noise.Noise's text)
    components: int | None = None
    seed: int = 0
    device: str = "auto"
    dataset: str = ""  # "" means "images" when ``data`` is given, else "mnist"
    data_dir: str | None = None  # a folder of IDX files
    limit: int | None = None
    data: str | None = None  # a folder or glob of images
    val: float | None = None  # the fraction of ``data`` (or of the ``classes``) held out (default: ``held_out``)
    val_data: str | None = None  # or a folder or glob of validation images
    size: tuple[int, int] | None = None  # (height, width) images are resized to, for models of one size
    patch: int | None = None  # side of the random training crops, for models of any size
    channels: int | None = None  # 1 or 3; None: the data's (3 when any image is in colour)
    augment: bool | None = None  # flip and rotate training patches (None: the model's default)
    # One-class training (anomaly detection): the labels of the normal images (IDX digits, subfolder names).
    classes: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        self._check_types()  # a model that is not text said as such (it was "unknown model 3", a KeyError)
        spec = get_spec(self.model)
        self.dataset = self.dataset or ("images" if self.data else "mnist")
        defaults = {name for name in spec.train if getattr(self, name, None) is None}  # taken from the registry
        if self.noise is not None or self.noise_mix is not None:  # --noise was given, as a level or a range or mix
            defaults -= {"noise", "noise_mix"}
        if spec.kind == "pca":
            self._resolve_pca()
        else:
            for name, generic in GENERIC.items():
                if getattr(self, name) is None and name not in ("noise", "loss"):
                    setattr(self, name, spec.train.get(name, generic))
            if self.noise is None and self.noise_mix is None:  # the model's noise, unless any noise is given
                self.noise, self.noise_mix = spec.train.get("noise", 0.0), spec.train.get("noise_mix")
            self.noise = self.noise or 0.0
            if self.loss is None:  # sigmoid outputs saturate under MSE on noisy inputs: the conv AEs then use BCE
                noisy_conv_ae = issubclass(spec.build, ConvAE) and bool(self.noise or self.noise_mix)
                self.loss = spec.train.get("loss", "bce" if noisy_conv_ae else "mse")
            if self.augment is None:
                self.augment = spec.train.get("augment", False)
            if self.components is not None:
                raise ValueError("--components applies to the pca model only")
        for name in PATHS:  # recorded absolute, so an export from elsewhere finds them
            value = getattr(self, name)
            if value:  # and without "..", so one folder reached two ways is one setting
                setattr(self, name, full_path(value, named=option_of(name)))
        try:
            self._check()
        except ValueError as err:  # a registry default: a model of one's own whose ModelSpec sets it
            named = [name for name in defaults if option_of(name) in str(err) or f"unknown {name} " in str(err)]
            if not named:
                raise
            raise ValueError(
                f"model {self.model!r}: its registry entry's training default {named[0]}="
                f"{spec.train[named[0]]!r} cannot work ({err}); fix its ModelSpec in aetool.models.REGISTRY"
            ) from None
        self._check_data(spec.kind)
        if self.val is None and not self.val_data and (self.data or self.classes):  # recorded as held out, not null
            self.val = self.held_out

    def _check_types(self) -> None:
        """Refuse a setting of the wrong type before it is used (``epochs=1.5`` failed in the training loop, a
        string ``size`` was split into characters); read ``size`` and ``classes`` given as text or a list, and
        ``noise`` given as ``--noise``'s text."""
        self.size = self._size(self.size)
        self.classes = parse_classes(self.classes)
        for field in fields(self):
            value, kind = getattr(self, field.name), str(field.type).split(" | ")[0]
            if value is None and str(field.type).endswith("| None"):
                continue
            if field.name == "noise" and isinstance(value, str):  # --noise's text: split below
                continue
            option = option_of(field.name)
            if kind == "int":
                if not _is_int(value):
                    raise ValueError(f"{option} must be a whole number, got {value!r}")
                setattr(self, field.name, int(value))  # numpy's integers too, which JSON cannot store
            elif kind == "float":
                if not _is_real(value):
                    raise ValueError(f"{option} must be a number, got {value!r}")
                setattr(self, field.name, float(value))
            elif kind == "bool" and not isinstance(value, bool):
                raise ValueError(f"{option} must be True or False, got {value!r}")
            elif field.name in PATHS and not isinstance(value, str | os.PathLike):
                raise ValueError(f"{option} must be a path (text or a Path), got {value!r}")
            elif field.name in PATHS and not str(value):  # --data-dir "" went on to download MNIST (trial 86)
                raise ValueError(f"{option} is an empty name; give a folder")
            elif kind == "str" and field.name not in PATHS and not isinstance(value, str):
                raise ValueError(f"{option} must be text, got {value!r}")
        noise: Any = self.noise  # a level, or --noise's text
        mix = self.noise_mix
        if isinstance(mix, str) and not isinstance(noise, str) and not noise:
            # read as --noise's text: a run recorded before the text was split here holds --noise gaussian=0.5 as
            # noise_mix, and resuming it with that --noise again was a conflict
            noise, mix = mix, None
        self.noise, self.noise_kind, self.noise_mix = split_noise(noise, mix, kind=self.noise_kind)

    @staticmethod
    def _size(size: Any) -> tuple[int, int] | None:
        """``"28x28"`` (``runtime.images.parse_size``) or two positive integers → (28, 28)."""
        if size is None:
            return None
        if isinstance(size, str):
            try:
                return parse_size(size, option="--size")
            except AetoolError as err:
                raise ValueError(str(err)) from None
        if not (isinstance(size, tuple | list) and len(size) == 2 and all(map(_is_int, size))):
            raise ValueError(f"--size takes HxW (28x28) or two whole numbers (28, 28), got {size!r}")
        return int(size[0]), int(size[1])

    def _resolve_pca(self) -> None:
        """Refuse the training settings for pca, which is fitted in closed form."""
        given = [name for name, inert in PCA_INERT.items() if getattr(self, name) not in (None, inert)]
        if given:
            options = ", ".join(map(option_of, given))
            verb = "does" if len(given) == 1 else "do"
            raise ValueError(f"{options} {verb} not apply to pca: it is fitted in closed form on clean images")
        for name in PCA_INERT:
            setattr(self, name, None)
        self.epochs = 0

    def _check(self) -> None:
        check_settings(vars(self))
        if get_spec(self.model).kind != "pca" and self.epochs is not None and self.epochs < 1:
            raise ValueError(f"--epochs must be at least 1, got {self.epochs}")
        if self.components is not None and self.channels is not None and self.size is not None:
            pixels = self.channels * self.size[0] * self.size[1]  # else load_training_data checks the images' own
            if self.components > pixels:
                raise ValueError(
                    f"--components must be at most {pixels} (the pixels of an image), got {self.components}"
                )
        if self.noise_mix is not None:
            self.noise_mix = str(Noise.parse(self.noise_mix, default_kind=self.noise_kind))

    def _check_data(self, kind: str) -> None:
        """Refuse data options that do not apply to the model."""
        if self.size is not None and kind == "conv":
            raise ValueError(f"--size fits images to a model of one size; {self.model} takes any size (use --patch)")
        if self.patch is not None:
            if kind != "conv":
                raise ValueError(
                    f"--patch crops images for a model of any size; {self.model} takes one size (use --size)"
                )
            multiple = build_model(self.model).multiple_of or 1
            if self.patch < multiple or self.patch % multiple:
                at_least = f"at least {multiple}" if multiple == 1 else f"a multiple of {multiple} (≥ {multiple})"
                raise ValueError(f"--patch must be {at_least} for {self.model}, got {self.patch}")

    @property
    def noise_spec(self) -> Noise:
        """The training noise: none, one level of one kind, or a range or mix drawn per image."""
        if self.noise_mix:
            return Noise.parse(self.noise_mix)
        return Noise.single(self.noise or 0.0, kind=self.noise_kind)

    @property
    def ends_in_detector(self) -> bool:
        """Whether a run of these settings ends in a calibrated anomaly detector: a one-class run (``classes``) or
        a model whose registry entry is one (``anomaly``)."""
        return bool(self.classes) or get_spec(self.model).detector

    @property
    def held_out(self) -> float:
        """The fraction held out for validation: ``val``, else ``ONE_CLASS_VAL`` (0.2) for a one-class run and
        ``DEFAULT_VAL`` (0.1) for others."""
        if self.val is not None:
            return self.val
        return ONE_CLASS_VAL if self.classes else DEFAULT_VAL

    @property
    def arch(self) -> dict[str, Any]:
        """Constructor arguments: the registry's, with the image channels, size and command-line overrides."""
        arch = dict(get_spec(self.model).arch)
        if self.components is not None:
            arch["components"] = self.components
        if self.channels is not None:
            arch["channels"] = self.channels
        if self.size is not None:
            arch["size"] = self.size
        return arch

    def to_dict(self) -> dict[str, Any]:
        """The settings as stored in ``checkpoint.pt`` and ``metrics.json``."""
        return asdict(self)

    @classmethod
    def from_dict(cls, stored: Any) -> TrainConfig:
        """A config read back from a run; raises ``ValueError`` when ``stored`` is not a dict of known settings."""
        if not isinstance(stored, dict) or not isinstance(stored.get("model"), str):
            raise ValueError(f"a training config is a dict with a model name, got {type(stored).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = set(stored) - known - set(LEGACY_KEYS)
        if unknown:
            raise ValueError(f"unknown training settings: {', '.join(sorted(unknown))}")
        settings = {key: value for key, value in stored.items() if key in known}
        if "channels" not in stored:  # a round-1 run
            settings["model"] = contract.ROUND_1_NAMES.get(settings["model"], settings["model"])
        for key in ("size", "classes"):
            if isinstance(settings.get(key), list):
                settings[key] = tuple(settings[key])
        return cls(**settings)
