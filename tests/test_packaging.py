"""The sdist and the wheel hold what they must: the sdist its whole test suite with the helpers the tests import
(conftest.py and synthetic.py were left out, so its tests could not even be collected) and what rebuilds the wheel's
binaries; the wheel the runtime's files and ``py.typed``, and no tests."""

import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    not (ROOT / ".git").exists() or shutil.which("git") is None, reason="needs a git clone of the source"
)


def build(kind: str, out: Path) -> Path:
    """Build the sdist or wheel from a copy of the clone's tracked files (an ``aetool.egg-info`` left by an
    earlier build or ``pip install -e`` adds the files it lists) with setuptools' own backend, as pip and
    ``python -m build`` call it, into ``out``."""
    pytest.importorskip("setuptools", minversion="77", reason="pyproject.toml's build-system needs setuptools >= 77")
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    source = out / "source"
    for name in tracked.decode().split("\0"):
        if name and (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    code = f"from setuptools import build_meta; print(build_meta.build_{kind}({str(out)!r}))"
    done = subprocess.run([sys.executable, "-c", code], cwd=source, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return out / done.stdout.strip().splitlines()[-1]


def test_the_sdist_holds_every_test_with_its_helpers_and_the_npm_side(tmp_path):
    with tarfile.open(build("sdist", tmp_path)) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    wanted = {f"tests/{path.name}" for path in (ROOT / "tests").glob("*.py")}
    wanted |= {f"benchmarks/{path.name}" for path in (ROOT / "benchmarks").glob("*.py")}
    wanted |= {"scripts/build_bundled.py", "web/package.json", "web/package-lock.json", "web/run_page.mjs"}
    wanted |= {"aetool/py.typed", "LICENSE", ".ci/run"}
    assert {"tests/conftest.py", "tests/synthetic.py"} <= wanted
    assert wanted <= names, sorted(wanted - names)
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]


def test_the_wheel_holds_the_runtime_files_and_py_typed_and_no_tests(tmp_path):
    with zipfile.ZipFile(build("wheel", tmp_path)) as wheel:
        names = set(wheel.namelist())
    assert {"aetool/py.typed", "aetool/runtime/bundled/denoise.onnx", "aetool/web/page/index.html"} <= names
    assert not [name for name in names if name.startswith(("tests/", "benchmarks/", "web/"))]
