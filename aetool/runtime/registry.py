"""Where bundled models live and how a ``--model`` argument becomes a file path."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from aetool.errors import ModelFileError
from aetool.runtime.files import missing_because
from aetool.runtime.onnxfile import outside_folder

BUNDLED_DIR = Path(__file__).with_name("bundled")
MODEL_DIR_ENV = "AETOOL_MODEL_DIR"  # overrides BUNDLED_DIR, e.g. for a models folder outside the package
INDEX = "models.json"


def models_dir() -> Path:
    """The folder of bundled models: ``$AETOOL_MODEL_DIR`` when set, else the package's ``bundled/``; raises
    ``ModelFileError`` when the variable names no folder."""
    named = os.environ.get(MODEL_DIR_ENV)
    if not named:
        return BUNDLED_DIR
    if not Path(named).is_dir():
        raise ModelFileError(f"${MODEL_DIR_ENV} is {named}, which is not a folder; point it at a folder of models")
    return Path(named)


def where_bundled() -> str:
    """Where the bundled models are looked for, in words: the folder, and the variable that named it if one did."""
    return f"{models_dir()} (${MODEL_DIR_ENV})" if os.environ.get(MODEL_DIR_ENV) else str(models_dir())


def bundled_index() -> dict[str, dict[str, Any]]:
    """``models.json`` as ``{name: {"file": ..., ...}}``; empty when no models are bundled."""
    path = models_dir() / INDEX
    try:
        index = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        raise ModelFileError(f"cannot read the bundled model index {path}: {err}") from None
    if not isinstance(index, dict) or not all(isinstance(v, dict) and "file" in v for v in index.values()):
        raise ModelFileError(f'{path} must map each model name to an object with a "file" key')
    for name, entry in index.items():
        problem = _entry_problem(entry, path)
        if problem:
            raise ModelFileError(f"{path}: model {name!r}: {problem}")
    return index


def _entry_problem(entry: dict[str, Any], index: Path) -> str | None:
    """What is wrong with one entry of the ``index`` (None: nothing). Its files lie inside the index's own folder,
    subfolders included (a folder of models someone else wrote could name ``/etc/passwd``: judged as external
    data is, ``onnxfile.outside_folder``); its texts are text and its numbers numbers, since ``aetool models`` prints
    them."""
    for key in ("file", "decoder"):
        value = entry.get(key)
        if key == "decoder" and value is None:
            continue
        if not isinstance(value, str) or outside_folder(index, value):
            return f'"{key}" must name a file inside that folder (no absolute path, .. step or link out), got {value!r}'
    for key in ("precision", "summary", "use"):
        if entry.get(key) is not None and not isinstance(entry[key], str):
            return f'"{key}" must be text, got {entry[key]!r}'
    for key in ("test_mse", "bytes"):
        value = entry.get(key)
        number = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
        if value is not None and not number:
            return f'"{key}" must be a finite number of at least 0, got {value!r}'
    return None


def _a_folder(path: Path) -> str:
    """Why a folder is no model, pointing to the model file of a run folder."""
    inside = path / "model.onnx"
    hint = f"; the run's model is {inside}" if inside.is_file() else ""
    return f"model {path} is a folder, not an .onnx file{hint}"


def resolve(model: str | Path) -> Path:
    """The file behind ``model``: a path to an ``.onnx`` file (``str``, ``Path`` or any ``os.PathLike``), or the name
    of a bundled model. Raises ``ModelFileError`` when there is no such file or model, ``TypeError`` for another
    type (bytes: decode them, ``os.fsdecode``)."""
    if not isinstance(model, str | os.PathLike) or isinstance(os.fspath(model), bytes):
        kind = type(model)
        raise TypeError(f"a model is a bundled name or a path (str or Path), got {kind.__module__}.{kind.__qualname__}")
    text = os.fspath(model)
    if not text:
        raise ModelFileError("the model is named by an empty string; give a bundled model's name or an .onnx file")
    looks_like_path = not isinstance(model, str) or text.endswith(".onnx") or os.sep in text or "/" in text
    if not looks_like_path:
        index = bundled_index()
        if text in index:
            path = models_dir() / index[text]["file"]
            if not path.is_file():
                raise ModelFileError(f"bundled model {text!r} is listed in {INDEX} but {path} is missing")
            return path
        if Path(text).is_dir():
            raise ModelFileError(_a_folder(Path(text)))
        if Path(text).is_symlink() and not Path(text).exists():  # a link here, to nothing or in a loop
            raise ModelFileError(f"model file {text} {missing_because(Path(text))}")
        if not Path(text).is_file():
            bundled = ", ".join(index) or f"none; no {INDEX} in {where_bundled()}"
            raise ModelFileError(
                f"unknown model {text!r}: no such file and no bundled model of that name (bundled: {bundled})"
            )
    path = Path(text)
    if path.is_dir():
        raise ModelFileError(_a_folder(path))
    if path.exists() and not path.is_file():
        raise ModelFileError(f"model file {path} is not a regular file (a device, pipe or socket); name an .onnx file")
    if not path.is_file():
        raise ModelFileError(f"model file {path} {missing_because(path)}")
    return path
