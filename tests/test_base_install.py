"""Run by .ci/run in a venv holding only the base install (``pip install .``): no torch, no onnx."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    os.environ.get("AETOOL_BASE_ONLY") != "1", reason="only meaningful in the base-install venv that .ci/run builds"
)


def test_torch_and_onnx_are_absent():
    with pytest.raises(ImportError):
        import torch  # noqa: F401
    assert importlib.util.find_spec("onnx") is None
    assert importlib.util.find_spec("torchvision") is None


def test_aetool_comes_from_the_installed_package():
    """Not from the clone these tests sit in (a packager's layout may be dist-packages or a --target folder)."""
    import aetool

    assert Path(aetool.__file__).resolve().parent != Path(__file__).resolve().parents[1] / "aetool"
    assert (Path(aetool.__file__).parent / "runtime" / "bundled" / "denoise.onnx").is_file()


def test_cli_runs_a_bundled_model_without_torch(tmp_path):
    from PIL import Image

    image = tmp_path / "digit.png"
    Image.new("L", (28, 28)).save(image)
    done = subprocess.run([sys.executable, "-m", "aetool", "denoise", str(image)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "digit.denoised.png").is_file()
