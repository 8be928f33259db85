"""``aetool web``: the static site (page, bundled models, onnxruntime-web's files), its server, and the page itself
in headless Chromium, whose outputs must equal Python onnxruntime's. Torch-free, like the runtime."""

from __future__ import annotations

import importlib.util
import ipaddress
import json
import os
import shutil
import subprocess
import threading
import urllib.request
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from conftest import node, onnx_bytes, toy_metadata
from typer.testing import CliRunner

from aetool.check import cases_for
from aetool.cli import app
from aetool.errors import AetoolError, ModelFileError
from aetool.runtime import contract, images
from aetool.runtime.noise import NOISE_KINDS, add_noise
from aetool.runtime.registry import BUNDLED_DIR
from aetool.web import ORT_FILES, PAGE, WASM_MAGIC, build_site, find_ort_web, model_entry, server, site_urls

REPO = Path(__file__).resolve().parents[1]
NODE_MODULES = REPO / "web" / "node_modules"
CHROMIUM = Path("/usr/bin/chromium")
TIMES_ENV = "AETOOL_WEB_TIMES"  # a file to write the browser's per-image times to (benchmarks/web_speed.py)


@pytest.fixture
def fake_ort(tmp_path) -> Path:
    """An npm package folder holding stand-ins for onnxruntime-web's three files, version 9.9.9."""
    dist = tmp_path / "node_modules" / "onnxruntime-web" / "dist"
    dist.mkdir(parents=True)
    for name in ORT_FILES:
        (dist / name).write_bytes(WASM_MAGIC if name.endswith(".wasm") else f"// {name}".encode())
    (dist.parent / "package.json").write_text(json.dumps({"name": "onnxruntime-web", "version": "9.9.9"}))
    return dist


def own_models(folder: Path, index: dict, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder of models of your own, named by ``$AETOOL_MODEL_DIR``: the bundled deep.onnx, ``index`` as its
    models.json."""
    folder.mkdir(exist_ok=True)
    shutil.copyfile(BUNDLED_DIR / "deep.onnx", folder / "deep.onnx")
    (folder / "models.json").write_text(json.dumps(index))
    monkeypatch.setenv("AETOOL_MODEL_DIR", str(folder))
    return folder


def test_the_site_holds_the_page_the_bundled_models_and_onnxruntime_web(fake_ort, tmp_path):
    site = build_site(tmp_path / "site", ort_web=fake_ort)
    folder = tmp_path / "site"
    assert site.models == ["denoise", "denoise-dense", "conv-unpool", "deep"] and site.ort_web_version == "9.9.9"
    assert sorted(p.name for p in (folder / "ort").iterdir()) == sorted(ORT_FILES)
    for name in site.models:
        assert (folder / "models" / f"{name}.onnx").read_bytes() == (BUNDLED_DIR / f"{name}.onnx").read_bytes()
    manifest = json.loads((folder / "models.json").read_text())
    entries = {entry["name"]: entry for entry in manifest["models"]}
    assert manifest["onnxruntime_web"] == "9.9.9"
    assert entries["denoise-dense"]["role"] == "denoise" and entries["denoise-dense"]["noise"] == 0.5
    assert entries["denoise"]["role"] == "denoise" and entries["denoise"]["noise"] == 0.3  # blind: a level to show
    assert entries["denoise-dense"]["size"] == [28, 28] and entries["deep"]["role"] == "reconstruct"
    assert entries["denoise"]["size"] is None and entries["denoise"]["multiple_of"] == 2
    assert entries["conv-unpool"]["size"] is None and entries["conv-unpool"]["multiple_of"] == 4
    assert entries["conv-unpool"]["target"] == contract.PORTABLE
    assert {entry["polarity"] for entry in entries.values()} == {contract.POLARITY}
    assert all(entry["outputs"] == ["reconstruction", "code"] for entry in entries.values())
    page = (folder / "index.html").read_text() + (folder / "app.js").read_text() + (folder / "style.css").read_text()
    assert "://" not in page  # nothing fetched from the internet: every URL is relative to the page
    assert '<script src="ort/ort.wasm.min.js">' in page and site.bytes > 5e6


def test_models_of_your_own_that_share_a_file_name_each_get_a_file_of_their_own(fake_ort, tmp_path, monkeypatch):
    """Run folders all hold model.onnx: the site named its files after the bundled files, so two of them became one
    (the second overwrote the first, and both entries of models.json pointed at it)."""
    mine = tmp_path / "mine"
    for name, source in {"conv": "conv-unpool.onnx", "three": "deep.onnx"}.items():
        (mine / name).mkdir(parents=True)
        shutil.copyfile(BUNDLED_DIR / source, mine / name / "model.onnx")
    index = {
        "conv": {"file": "conv/model.onnx"},
        "three": {"file": "three/model.onnx"},
        "../x y": {"file": "conv/model.onnx"},
    }
    (mine / "models.json").write_text(json.dumps(index))
    monkeypatch.setenv("AETOOL_MODEL_DIR", str(mine))
    site = build_site(tmp_path / "site", ort_web=fake_ort)
    manifest = {
        entry["name"]: entry["file"] for entry in json.loads((tmp_path / "site" / "models.json").read_text())["models"]
    }
    assert site.models == ["conv", "three", "../x y"]
    assert manifest == {"conv": "models/conv.onnx", "three": "models/three.onnx", "../x y": "models/_._x_y.onnx"}
    assert sorted(path.name for path in (tmp_path / "site" / "models").iterdir()) == [
        "_._x_y.onnx",
        "conv.onnx",
        "three.onnx",
    ]
    assert (tmp_path / "site" / "models" / "three.onnx").read_bytes() == (BUNDLED_DIR / "deep.onnx").read_bytes()
    assert (tmp_path / "site" / "models" / "conv.onnx").read_bytes() == (BUNDLED_DIR / "conv-unpool.onnx").read_bytes()


def test_a_denoisers_entry_names_the_kind_of_noise_it_was_trained_on(tmp_path):
    """The page added Gaussian noise to every denoiser, so one trained on masking saw noise it never learned."""
    conv = ["N", 1, "H", "W"]
    for noise, want in [
        ({"level": 0.25, "kind": "mask"}, (0.25, "mask")),
        ({"level": 0.1, "kind": "salt-pepper"}, (0.1, "salt-pepper")),
        ({"level": None, "kind": None, "mix": "gaussian=0:0.6,mask=0.3"}, (0.3, "gaussian")),  # blind: half of 0.6
        ({"level": None, "kind": None, "mix": "mask=0:0.3"}, (0.15, "mask")),  # a range of one kind: that kind
        ({"level": None, "kind": None, "mix": "salt-pepper=0.1,mask=0.4"}, (0.05, "salt-pepper")),
        ({"level": 0.0, "kind": "gaussian"}, (0.0, None)),  # trained on clean images
    ]:
        metadata = {**toy_metadata("mine", "conv", 4), contract.NOISE: json.dumps(noise)}
        nodes = [node("Identity", ["image"], ["reconstruction"]), node("Identity", ["image"], ["code"])]
        (tmp_path / "m.onnx").write_bytes(
            onnx_bytes({"image": conv}, {"reconstruction": conv, "code": conv}, nodes, metadata)
        )
        entry = model_entry("mine", tmp_path / "m.onnx", None, file="mine.onnx")
        assert (entry["noise"], entry["noise_kind"]) == want
        assert entry["role"] == ("reconstruct" if want[1] is None else "denoise")


def test_site_file_names_are_plain_visible_and_apart_even_where_case_is_ignored():
    from aetool.web import site_files

    names = ["digits", "", ".", "..", "CAF_", "caf_", "grey/cu", "grey_cu"]
    files = site_files(names)
    assert files == {
        "digits": "digits.onnx",
        "": "_.onnx",
        ".": "_-2.onnx",
        "..": "_..onnx",
        "CAF_": "CAF_.onnx",
        "caf_": "caf_-2.onnx",
        "grey/cu": "grey_cu.onnx",
        "grey_cu": "grey_cu-2.onnx",
    }
    assert len({file.lower() for file in files.values()}) == len(names)


def test_onnxruntime_web_is_found_from_its_package_or_dist_folder_else_explained(fake_ort, tmp_path, monkeypatch):
    for given in (fake_ort, fake_ort.parent, fake_ort.parents[1], fake_ort.parents[2]):
        assert find_ort_web(given=given) == fake_ort
    monkeypatch.setenv("AETOOL_ORT_WEB", str(fake_ort.parents[1]))
    assert find_ort_web() == fake_ort
    with pytest.raises(AetoolError, match=r"not in .*elsewhere; see the README's 'In the browser'$"):
        find_ort_web(given=tmp_path / "elsewhere")
    monkeypatch.setenv("AETOOL_ORT_WEB", str(tmp_path / "nowhere"))
    with pytest.raises(AetoolError, match=r"not in .*nowhere \(\$AETOOL_ORT_WEB\); see"):
        find_ort_web()
    monkeypatch.delenv("AETOOL_ORT_WEB")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("aetool.web.CLONE_WEB", tmp_path / "no-clone")
    with pytest.raises(AetoolError, match=r"under .*no-clone/node_modules or .*/web/node_modules .*--ort-web DIR$"):
        find_ort_web()  # the folders it looked in, by their full paths (it said web/node_modules: of which clone?)


def test_web_command_writes_the_site_or_says_in_one_line_why_not(fake_ort, tmp_path):
    runner = CliRunner()
    done = runner.invoke(app, ["web", "-o", str(tmp_path / "site"), "--ort-web", str(fake_ort)])
    assert done.exit_code == 0 and "wrote" in done.stderr and "9.9.9" in done.stderr
    assert (tmp_path / "site" / "index.html").is_file()
    (tmp_path / "file").write_text("")
    (tmp_path / "empty").mkdir()
    for out, ort_web in ((tmp_path / "other", tmp_path / "empty"), (tmp_path / "file", fake_ort)):
        done = runner.invoke(app, ["web", "-o", str(out), "--ort-web", str(ort_web)])
        assert done.exit_code == 2 and len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr
    assert not (tmp_path / "other").exists()


def test_web_refuses_an_empty_output_name_and_prints_commands_that_paste_as_they_are(fake_ort, tmp_path, monkeypatch):
    runner = CliRunner()
    monkeypatch.chdir(tmp_path)
    done = runner.invoke(app, ["web", "-o", "", "--ort-web", str(fake_ort)])  # was a site in the current folder
    assert (
        done.exit_code == 2
        and done.stderr == "aetool: error: -o is an empty name; give a folder (. for the current one)\n"
    )
    assert not (tmp_path / "index.html").exists() and not (tmp_path / "models.json").exists()
    done = runner.invoke(app, ["web", "-o", "my site", "--ort-web", str(fake_ort)])
    assert done.exit_code == 0 and done.stderr.splitlines()[-1] == (
        "aetool: serve it over HTTP, e.g. aetool web -o 'my site' --serve 8000, or python3 -m http.server -d 'my site'"
    )


def test_onnxruntime_webs_files_must_hold_a_webassembly_module(fake_ort, tmp_path):
    (fake_ort / "ort-wasm-simd-threaded.wasm").write_text("junk with the right name")  # made a site that could not run
    done = CliRunner().invoke(app, ["web", "-o", str(tmp_path / "site"), "--ort-web", str(fake_ort)])
    assert done.exit_code == 2 and done.stderr == (
        f"aetool: error: {fake_ort / 'ort-wasm-simd-threaded.wasm'} is not a WebAssembly module (it does not start "
        "with \\0asm): not onnxruntime-web's\n"
    )
    assert not (tmp_path / "site").exists()


def test_web_says_which_listed_models_it_left_off_because_their_files_are_missing(fake_ort, tmp_path, monkeypatch):
    mine = own_models(tmp_path / "mine", {"x": {"file": "nope.onnx"}, "y": {"file": "deep.onnx"}}, monkeypatch)
    runner = CliRunner()
    done = runner.invoke(app, ["web", "-o", str(tmp_path / "site"), "--ort-web", str(fake_ort)])
    assert done.exit_code == 0 and "wrote" in done.stderr and ": y and onnxruntime-web" in done.stderr
    assert f"warning: left off the page, their files missing: x ({mine / 'nope.onnx'})" in done.stderr
    (mine / "models.json").write_text(json.dumps({"x": {"file": "nope.onnx"}}))
    done = runner.invoke(app, ["web", "-o", str(tmp_path / "other"), "--ort-web", str(fake_ort)])
    assert done.exit_code == 2 and len(done.stderr.splitlines()) == 1
    assert done.stderr.rstrip().endswith(f"the files models.json names are missing: x ({mine / 'nope.onnx'})")


def test_web_leaves_off_a_model_the_page_cannot_run_and_builds_the_others(fake_ort, tmp_path, monkeypatch):
    """A file off the contract stopped the whole site; one with external data was copied without its data file, and
    the page, whose every model then failed to load, was reported written (trial 70)."""
    from conftest import FLOAT, tensor

    names = ("deep", "flat", "outside", "twice", "three", "garbage")
    mine = own_models(tmp_path / "mine", {name: {"file": f"{name}.onnx"} for name in names}, monkeypatch)
    flat = ["N", 784]
    (mine / "flat.onnx").write_bytes(
        onnx_bytes({"image": flat}, {"reconstruction": flat}, [node("Identity", ["image"], ["reconstruction"])])
    )
    conv = ["N", 1, "H", "W"]
    (mine / "twice.onnx").write_bytes(  # values up to 2: put on the page, which showed them clipped (trial 72)
        onnx_bytes({"image": conv}, {"reconstruction": conv}, [node("Add", ["image", "image"], ["reconstruction"])])
    )
    three = [3, 1, "H", "W"]  # the page feeds one image a call
    (mine / "three.onnx").write_bytes(
        onnx_bytes({"image": three}, {"reconstruction": three}, [node("Identity", ["image"], ["reconstruction"])])
    )
    (mine / "garbage.onnx").write_bytes(b"not a model")  # with no test_mse in the index, it stopped web and models
    (mine / "w.bin").write_bytes(bytes(4))
    (mine / "outside.onnx").write_bytes(
        onnx_bytes(
            {"image": conv},
            {"reconstruction": conv},
            [node("Add", ["image", "w"], ["reconstruction"])],
            initializers=[tensor("w", [1], FLOAT, location="w.bin")],
        )
    )
    done = CliRunner().invoke(app, ["web", "-o", str(tmp_path / "site"), "--ort-web", str(fake_ort)])
    assert done.exit_code == 0 and ": deep and onnxruntime-web" in done.stderr
    assert "warning: left off the page, flat: " in done.stderr and "does not follow the aetool contract" in done.stderr
    assert "warning: left off the page, outside: " in done.stderr and "external data (w.bin)" in done.stderr
    assert "warning: left off the page, twice: " in done.stderr and "outside [0, 1]" in done.stderr
    assert "warning: left off the page, three: " in done.stderr and "takes 3 images a call" in done.stderr
    assert "warning: left off the page, garbage: " in done.stderr
    assert sorted(path.name for path in (tmp_path / "site" / "models").iterdir()) == ["deep.onnx"]
    listed = CliRunner().invoke(app, ["models"])
    assert listed.exit_code == 0 and "warning: garbage: " in listed.stderr and listed.stdout.startswith("name")


def test_a_model_of_float16_inputs_is_not_put_on_the_page(tmp_path):
    """The page feeds float32 images: such a file failed there, and with it every other model (trial 70)."""
    from conftest import float16_input_model

    (tmp_path / "half.onnx").write_bytes(float16_input_model())
    with pytest.raises(ModelFileError, match=r"takes tensor\(float16\) images; the page feeds float32 ones"):
        model_entry("half", tmp_path / "half.onnx", None, file="half.onnx")


def test_web_never_overwrites_a_folder_of_other_files_and_rebuilds_its_own(fake_ort, tmp_path):
    runner = CliRunner()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "index.html").write_text("my page")
    done = runner.invoke(app, ["web", "-o", str(tmp_path / "mine"), "--ort-web", str(fake_ort)])
    assert done.exit_code == 2 and "it holds other files (index.html)" in done.stderr
    assert (tmp_path / "mine" / "index.html").read_text() == "my page" and not (tmp_path / "mine" / "ort").exists()
    for _ in range(2):  # a site's own folder is rebuilt
        done = runner.invoke(app, ["web", "-o", str(tmp_path / "site"), "--ort-web", str(fake_ort)])
        assert done.exit_code == 0, done.stderr
    assert (tmp_path / "site" / "index.html").read_bytes() == (PAGE / "index.html").read_bytes()


def test_a_rebuild_removes_the_models_the_earlier_site_listed_and_no_file_of_yours(fake_ort, tmp_path, monkeypatch):
    mine = own_models(tmp_path / "mine", {"deep": {"file": "deep.onnx"}, "gone": {"file": "deep.onnx"}}, monkeypatch)
    build_site(tmp_path / "site", ort_web=fake_ort)
    models = tmp_path / "site" / "models"
    (models / "NOTES.txt").write_text("mine")
    (models / "old-model.onnx").write_bytes(b"a model of mine")
    (mine / "models.json").write_text(json.dumps({"deep": {"file": "deep.onnx"}}))  # gone is no longer bundled
    build_site(tmp_path / "site", ort_web=fake_ort)
    assert sorted(path.name for path in models.iterdir()) == [
        "NOTES.txt",
        "deep.onnx",
        "old-model.onnx",
    ]  # were deleted


def test_a_model_name_too_long_for_a_file_name_is_cut_and_a_rebuild_stays_whole(fake_ort, tmp_path, monkeypatch):
    from aetool.runtime.files import write_files

    build_site(tmp_path / "site", ort_web=fake_ort)  # the bundled models: an earlier, working site
    own_models(tmp_path / "mine", {"x" * 300: {"file": "deep.onnx"}, "x" * 301: {"file": "deep.onnx"}}, monkeypatch)
    build_site(tmp_path / "site", ort_web=fake_ort)  # was "File name too long", after the page had been replaced
    files = sorted(path.name for path in (tmp_path / "site" / "models").iterdir())
    assert files == ["x" * 239 + "-2.onnx", "x" * 239 + ".onnx"]
    (tmp_path / "other").mkdir()
    with pytest.raises(AetoolError, match=r"cannot write .*x{300}\.onnx: File name too long$"):
        write_files({tmp_path / "other" / "a.txt": b"a", tmp_path / "other" / ("x" * 300 + ".onnx"): b"b"})
    assert not any((tmp_path / "other").iterdir())  # nothing written, not the first file either


@pytest.mark.skipif(importlib.util.find_spec("resource") is None, reason="file size limits are POSIX's")
def test_a_site_that_cannot_be_written_whole_leaves_the_earlier_one_as_it_was(fake_ort, tmp_path):
    """A full disk (here a file size limit, as `ulimit -f` sets) in the middle of a rebuild: the earlier site stays
    whole (it was overwritten in place, its wasm cut short), and a new site's folder is not left half made."""
    import resource

    build_site(tmp_path / "site", ort_web=fake_ort)
    before = {p: p.read_bytes() for p in (tmp_path / "site").rglob("*") if p.is_file()}
    (fake_ort / "ort-wasm-simd-threaded.wasm").write_bytes(WASM_MAGIC + b"w" * 300_000)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, hard))
    try:
        for folder in ("site", "new"):
            with pytest.raises(AetoolError, match=r"ort-wasm-simd-threaded.wasm: File too large$"):
                build_site(tmp_path / folder, ort_web=fake_ort)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert {p: p.read_bytes() for p in (tmp_path / "site").rglob("*") if p.is_file()} == before
    assert not (tmp_path / "new").exists()


def test_a_site_on_a_read_only_file_system_is_said_as_the_image_commands_say_it(fake_ort, tmp_path, monkeypatch):
    """It said "cannot write …/site/models.json: Read-only file system: …/site", of a folder it could not make."""
    from aetool.runtime import files

    def read_only(target):
        raise OSError(30, "Read-only file system", str(target))

    monkeypatch.setattr(files, "_create_temporary", read_only)
    with pytest.raises(AetoolError) as refused:
        build_site(tmp_path / "site", ort_web=fake_ort)
    assert str(refused.value) == f"cannot write into {tmp_path / 'site'}: Read-only file system (in {tmp_path})"
    assert not (tmp_path / "site").exists()


def test_web_refuses_a_port_out_of_range_or_taken_before_writing_the_site(fake_ort, tmp_path):
    runner = CliRunner()
    out = ["-o", str(tmp_path / "site"), "--ort-web", str(fake_ort)]
    done = runner.invoke(app, ["web", *out, "--serve", "70000"])
    assert done.exit_code == 2 and "Traceback" not in done.output and "65535" in done.output
    taken = server(tmp_path, port=0)
    try:
        port = taken.server_address[1]
        done = runner.invoke(app, ["web", *out, "--serve", str(port)])
        assert done.exit_code == 2 and done.stderr.startswith(f"aetool: error: cannot serve on port {port}: ")
        assert len(done.stderr.splitlines()) == 1
    finally:
        taken.server_close()
    assert not (tmp_path / "site").exists()


def _has_ipv6_loopback() -> bool:
    import socket

    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def test_web_serves_on_the_address_given_and_refuses_one_not_of_this_machine(fake_ort, tmp_path, monkeypatch):
    """A trial found no way to serve the page beyond this machine (a phone on the same network): --host."""
    import aetool.web

    runner = CliRunner()
    out = ["-o", str(tmp_path / "site"), "--ort-web", str(fake_ort)]
    done = runner.invoke(app, ["web", *out, "--serve", "0", "--host", "203.0.113.7"])  # TEST-NET-3: not ours
    assert done.exit_code == 2 and done.stderr.startswith("aetool: error: cannot serve on 203.0.113.7 port 0: ")
    assert len(done.stderr.splitlines()) == 1 and not (tmp_path / "site").exists()
    done = runner.invoke(app, ["web", *out, "--host", "0.0.0.0"])
    assert done.exit_code == 2 and "give --serve PORT too" in done.stderr and not (tmp_path / "site").exists()
    served, listed = [], []

    def stopped(folder, *, port, host):
        httpd = server(folder, port=port, host=host)
        served.append(httpd.server_address)
        listed.append(site_urls(httpd))
        httpd.serve_forever = StoppedServer.serve_forever.__get__(httpd)  # type: ignore[method-assign]
        return httpd

    monkeypatch.setattr(aetool.web, "server", stopped)
    hosts = [("::1", "http://[::1]:")] if _has_ipv6_loopback() else []  # a machine may have no IPv6
    for host, shown in [*hosts, ("0.0.0.0", "http://127.0.0.1:")]:
        done = runner.invoke(app, ["web", *out, "--serve", "0", "--host", host])
        assert done.exit_code == 0 and f"serving {shown}{served[-1][1]}/" in done.stderr, done.output
        assert served[-1][0] == host
    others = listed[-1][1:]
    assert (f", from other devices {', '.join(others)} (Ctrl-C" in done.stderr) == bool(others), done.stderr


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_a_server_on_every_address_names_the_addresses_other_devices_reach_it_at(tmp_path, host):
    """--host 0.0.0.0 printed http://127.0.0.1:PORT/ "and on this machine's other addresses", which a phone's
    user had to look up: each address listed now answers with the site, and none of them is this machine's
    loopback or link only."""
    if host == "::" and not _has_ipv6_loopback():
        pytest.skip("this machine has no IPv6 loopback")
    (tmp_path / "index.html").write_text("the site")
    httpd = server(tmp_path, host=host)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        urls = site_urls(httpd)
        port = httpd.server_address[1]
        assert urls[0] == (f"http://[::1]:{port}/" if host == "::" else f"http://127.0.0.1:{port}/")
        for url in urls:
            with urllib.request.urlopen(url + "index.html", timeout=10) as answer:
                assert answer.read() == b"the site"
        hosts = [url.split("//")[1].rsplit(":", 1)[0].strip("[]") for url in urls[1:]]
        assert not any(ipaddress.ip_address(h).is_loopback or ipaddress.ip_address(h).is_link_local for h in hosts)
        assert len(set(urls)) == len(urls)
    finally:
        httpd.shutdown()
        httpd.server_close()
    one = server(tmp_path, host="127.0.0.1")
    assert site_urls(one) == [f"http://127.0.0.1:{one.server_address[1]}/"]
    one.server_close()


def test_web_puts_the_models_named_on_the_page_in_that_order_and_refuses_a_name_not_bundled(fake_ort, tmp_path):
    site = build_site(tmp_path / "site", ort_web=fake_ort, models=["deep", "denoise", "deep"])
    assert site.models == ["deep", "denoise"]
    assert sorted(p.name for p in (tmp_path / "site" / "models").iterdir()) == ["deep.onnx", "denoise.onnx"]
    done = CliRunner().invoke(app, ["web", "-o", str(tmp_path / "other"), "--ort-web", str(fake_ort), "-m", "dep"])
    assert done.exit_code == 2 and len(done.stderr.splitlines()) == 1 and not (tmp_path / "other").exists()
    assert (
        "no bundled model named 'dep' in " in done.stderr
        and "bundled: denoise, denoise-dense, conv-unpool, deep" in done.stderr
    )


@pytest.mark.parametrize("name", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_ctrl_c_or_sigterm_stops_the_server_as_it_should_stop_with_exit_0(fake_ort, tmp_path, name):
    import signal
    import sys

    command = [sys.executable, "-m", "aetool", "web", "-o", str(tmp_path / "site"), "--ort-web", str(fake_ort)]
    process = subprocess.Popen([*command, "--serve", "0"], stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    lines = [process.stderr.readline() for _ in range(2)]
    assert "serving http://127.0.0.1:" in lines[1]
    process.send_signal(getattr(signal, name))
    _, rest = process.communicate(timeout=20)
    assert process.returncode == 0 and rest.strip() == "aetool: stopped"


class StoppedServer:
    """Stands in for the site's HTTP server: stopped (Ctrl-C) as soon as it serves."""

    server_address = ("127.0.0.1", 8765)

    def serve_forever(self):
        raise KeyboardInterrupt

    def server_close(self):
        pass


def test_serve_on_a_site_written_before_serves_it_where_it_cannot_be_rebuilt(fake_ort, tmp_path, monkeypatch):
    """--serve rebuilt the site first, so outside the clone (no web/node_modules) it failed, exit 2 (trial 20); a
    place named for onnxruntime-web's files that holds none is still an error, not an old site served (trial 21)."""
    import aetool.web

    build_site(tmp_path / "site", ort_web=fake_ort)
    (tmp_path / "empty").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(aetool.web, "CLONE_WEB", tmp_path / "no-clone")  # as installed from a wheel
    monkeypatch.setattr(aetool.web, "server", lambda folder, port, host: StoppedServer())
    monkeypatch.delenv("AETOOL_ORT_WEB", raising=False)
    runner = CliRunner()
    served = runner.invoke(app, ["web", "-o", "site", "--serve", "0"])
    assert served.exit_code == 0 and served.stderr.startswith("aetool: serving the site already in site as it was")
    for refused in (
        runner.invoke(app, ["web", "-o", "site", "--serve", "0", "--ort-web", "empty"]),
        runner.invoke(app, ["web", "-o", "site", "--serve", "0"], env={"AETOOL_ORT_WEB": str(tmp_path / "empty")}),
        runner.invoke(app, ["web", "-o", "new", "--serve", "0"]),  # no site there to serve
    ):
        assert refused.exit_code == 2 and "onnxruntime-web's files" in refused.stderr


def test_the_server_isolates_the_page_and_serves_wasm_as_wasm(fake_ort, tmp_path):
    build_site(tmp_path / "site", ort_web=fake_ort)
    httpd = server(tmp_path / "site")
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/ort/ort-wasm-simd-threaded.wasm"
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.headers["Content-Type"] == "application/wasm"
            assert response.headers["Cross-Origin-Opener-Policy"] == "same-origin"
            assert response.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
    finally:
        httpd.shutdown()
        httpd.server_close()


# ---- the page in headless Chromium ----


def _browser_missing() -> str | None:
    if not CHROMIUM.is_file():
        return f"no {CHROMIUM} (Debian's chromium package: apt-get install chromium)"
    if shutil.which("node") is None:
        return "no node on PATH"
    if not (NODE_MODULES / "playwright-core").is_dir() or not (NODE_MODULES / "onnxruntime-web").is_dir():
        return "no web/node_modules (npm ci --prefix web)"
    return None


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """Call the page's window.aetool in headless Chromium: ``page(calls, threads=1)`` → one result per call (the
    ``early`` calls', begun before the models load, first). ``url`` is a page of the site's folder (``page.site``)
    with its query; ``missing`` files are answered 404, ``replace`` maps files to the text served instead,
    ``unisolated`` strips the isolation headers; with ``loads=False`` the page must fail to load its models, and
    the harness's error output comes back."""
    missing = _browser_missing()
    if missing:
        pytest.skip(f"browser test: {missing}")
    folder = tmp_path_factory.mktemp("site")
    build_site(folder, ort_web=NODE_MODULES / "onnxruntime-web")
    httpd = server(folder)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()

    def call(
        calls: list,
        threads: int = 1,
        *,
        url: str | None = None,
        early: list | None = None,
        missing: list | None = None,
        replace: dict | None = None,
        unisolated: bool = False,
        loads: bool = True,
    ) -> list | str:
        address = f"http://127.0.0.1:{httpd.server_address[1]}/{url or f'index.html?threads={threads}'}"
        job = {"url": address, "calls": calls, "early": early, "missing": missing, "replace": replace}
        job["unisolated"] = unisolated
        done = subprocess.run(
            ["node", str(REPO / "web" / "run_page.mjs")],
            input=json.dumps(job),
            capture_output=True,
            text=True,
            timeout=600,
        )
        if not loads:
            assert done.returncode == 1, done.stdout[-3000:]
            return done.stderr
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout)

    call.site = folder  # type: ignore[attr-defined]
    yield call
    httpd.shutdown()
    httpd.server_close()


def _cases(path: Path) -> list:
    """The fixed inputs ``aetool check`` uses for this file (ties and a non-square batch for conv models)."""
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return cases_for(list(session.get_inputs()[0].shape), contract.INPUT, 4 if "conv" in path.name else None)


def test_each_bundled_model_gives_onnxruntimes_numbers_in_the_browser(page):
    names = ["denoise", "conv-unpool", "deep"]
    calls, expected = [], []
    for name in names:
        path = BUNDLED_DIR / f"{name}.onnx"
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        for case in _cases(path):
            calls.append(["run", name, case.inputs.ravel().tolist(), list(case.inputs.shape)])
            want = dict(
                zip([o.name for o in session.get_outputs()], session.run(None, {"image": case.inputs}), strict=True)
            )
            expected.append((name, case.name, want))
    calls += [["time", name, 0.5] for name in names]
    results = page(calls)
    for (name, case, want), got in zip(expected, results, strict=False):
        for output, value in want.items():
            data = np.asarray(got[output]["data"], np.float32).reshape(got[output]["dims"])
            assert data.shape == value.shape, (name, case, output)
            assert np.abs(data - value).max() <= 1e-4, (name, case, output, float(np.abs(data - value).max()))
    times = results[len(expected) :]
    for timing in times:
        assert timing["runs"] >= 200 and timing["median_ms"] > 0 and timing["threads"] == 1
        print(f"browser wasm, 1 thread: {timing['name']} {timing['median_ms']:.3f} ms per image (median)")
    if os.environ.get(TIMES_ENV):
        Path(os.environ[TIMES_ENV]).write_text(json.dumps(times, indent=2))


def _rgba(pixels: np.ndarray) -> np.ndarray:
    """H×W×4 bytes of C×H×W pixels in [0, 1] (grey replicated), opaque."""
    colour = np.repeat(pixels, 3, axis=0) if len(pixels) == 1 else pixels
    rgba = np.concatenate([colour, np.ones_like(colour[:1])]) * 255
    return np.round(rgba).astype(np.uint8).transpose(1, 2, 0)


def test_the_page_carries_images_to_a_model_as_the_runtime_does(page):
    rng = np.random.default_rng(3)
    dark_on_light = 1 - np.kron(rng.integers(0, 2, (1, 7, 7)), np.ones((1, 4, 4))) * 0.9  # a bright border
    photo = rng.random((3, 30, 26))  # colour, not a multiple of 4
    cases = [("denoise", dark_on_light), ("conv-unpool", photo), ("conv-unpool", dark_on_light[:, :26, :22])]
    calls = [
        ["prepare", name, _rgba(pixels).ravel().tolist(), pixels.shape[2], pixels.shape[1]] for name, pixels in cases
    ]
    for (name, pixels), got in zip(cases, page(calls), strict=True):
        read = _rgba(pixels)[..., :3].transpose(2, 0, 1).astype(np.float32) / 255  # what reading gives
        grey, _ = images.to_channels(read, 1)
        flip = images.is_dark_on_light(grey)
        want = 1 - grey if flip else grey
        if name == "conv-unpool":
            want = images.pad_to(want, (-(-want.shape[1] // 4) * 4, -(-want.shape[2] // 4) * 4))
        assert got["flip"] == flip and got["dims"] == [1, *want.shape]
        np.testing.assert_allclose(np.asarray(got["data"]).reshape(want.shape), want, atol=1e-6)
    assert [got["flip"] for got in page(calls)] == [True, False, True]


def test_the_page_adds_each_kind_of_noise_as_the_runtime_does(page):
    clean = np.full((1, 1, 40, 50), 0.5, np.float32)  # 2,000 pixels at 0.5
    calls = [["noisy", clean.ravel().tolist(), list(clean.shape), 0.2, kind, 7] for kind in NOISE_KINDS]
    noisy = dict(zip(NOISE_KINDS, (np.asarray(got, np.float32) for got in page(calls)), strict=True))
    hit = {kind: values != 0.5 for kind, values in noisy.items()}
    assert 0.17 < hit["salt-pepper"].mean() < 0.23 and set(np.unique(noisy["salt-pepper"])) == {0.0, 0.5, 1.0}
    assert 0.17 < hit["mask"].mean() < 0.23 and set(np.unique(noisy["mask"])) == {0.0, 0.5}
    assert hit["gaussian"].all() and abs(float(noisy["gaussian"].std()) - 0.2) < 0.02
    runtime = add_noise(clean, 0.2, kind="salt-pepper", rng=7)  # the same kind of noise, not the same draw
    assert abs((runtime != 0.5).mean() - hit["salt-pepper"].mean()) < 0.05


def test_a_file_the_browser_cannot_decode_is_said_and_clears_the_results(page):
    import io

    from PIL import Image

    png = io.BytesIO()
    Image.fromarray(np.kron(np.eye(7, dtype=np.uint8) * 255, np.ones((4, 4), np.uint8))).save(png, "PNG")
    calls = [
        ["manifest"],
        ["open", [["digit.png", list(png.getvalue())]]],
        ["slide", [0.1, 0.2, 0.3, 0.4, 0.5]],
        ["open", [["notanimage.png", list(b"text")]]],
    ]
    manifest, opened, slid, refused = page(calls)
    assert slid == len(manifest["models"])  # five slider events in one task left each model's card five times
    images = opened.pop("images")
    assert opened == {"status": "digit.png: 28×28", "error": False, "cards": len(manifest["models"]), "busy": "false"}
    # each drawn image is an image to a screen reader, named by its caption (an unnamed canvas before)
    assert len(images) == 2 * len(manifest["models"]) and all(i["role"] == "img" for i in images)
    assert {i["name"] for i in images} >= {"input", "output"} and all(i["name"] for i in images)
    assert refused["error"] and refused["cards"] == 0  # the last image's results stayed up, with no word
    assert refused["status"].startswith("notanimage.png: not an image this browser can decode (")


def _png_digit() -> bytes:
    import io

    from PIL import Image

    png = io.BytesIO()
    Image.fromarray(np.kron(np.eye(7, dtype=np.uint8) * 255, np.ones((4, 4), np.uint8))).save(png, "PNG")
    return png.getvalue()


PICK_AGAIN = """(() => {
  const picker = document.getElementById('file'), chosen = new DataTransfer();
  chosen.items.add(new File([new Uint8Array([1])], 'again.png'));
  picker.files = chosen.files;
  picker.dispatchEvent(new Event('change'));
  return picker.value;
})()"""


def test_the_last_image_chosen_is_shown_and_one_chosen_while_the_models_load_waits_for_them(page):
    """A trial's findings: a large file chosen before a small one was shown over it once it had decoded; a file
    chosen while the models loaded was ignored (the page listened only once they had); choosing the same file
    again did nothing (the picker kept its value, so no change event came)."""
    import io

    from PIL import Image

    large = io.BytesIO()  # 6000×6000: it decodes well after the 28×28 PNG chosen after it
    ramp = np.linspace(0, 255, 6000, dtype=np.float32)
    Image.fromarray(np.add.outer(ramp, ramp).astype(np.uint8) // 2).save(large, "JPEG", quality=50)
    digit = _png_digit()
    [early, manifest, raced, picked] = page(
        [
            ["manifest"],
            ["open", [["large.jpg", list(large.getvalue())], ["digit.png", list(digit)]]],
            ["js", PICK_AGAIN],
        ],
        early=[["open", [["first.png", list(digit)]]]],
    )
    models = len(manifest["models"])
    assert early["status"] == "first.png: 28×28" and early["cards"] == models and not early["error"]
    assert raced["status"] == "digit.png: 28×28" and raced["cards"] == models
    assert picked == ""  # emptied once read: the same file chosen again is a change again


EMBEDDED = """<!doctype html>
<html><head><meta charset="utf-8">
<script>const state = 'theirs'; function fit() { return 'theirs'; }</script>
<script src="../ort/ort.wasm.min.js"></script>
<script src="../app.js" defer></script>
</head><body><p id="status">mine</p><input id="file" type="file"></body></html>
"""


def test_another_page_in_another_folder_runs_the_models_through_app_js(page):
    """app.js found models.json and onnxruntime-web's wasm beside the page, not beside itself, put its functions
    and constants in the page's global scope (a page's own `state` stopped it), and needed the page's elements;
    then it took over the page's own elements of its ids (`status`, `file`), where only index.html's are its."""
    (page.site / "embed").mkdir(exist_ok=True)
    (page.site / "embed" / "index.html").write_text(EMBEDDED)
    zeros = [0.0] * 784
    calls = [["run", "deep", zeros, [1, 1, 28, 28]], ["js", "[state, fit(), typeof prepare]"], ["js", PICK_AGAIN]]
    ran, scope, picked, status = page([*calls, ["js", "document.getElementById('status').textContent"]], url="embed/")
    assert picked == "C:\\fakepath\\again.png" and status == "mine"  # its own picker and status line stay its own
    want = ort.InferenceSession(BUNDLED_DIR / "deep.onnx").run(None, {"image": np.zeros((1, 1, 28, 28), np.float32)})
    assert np.abs(np.asarray(ran["reconstruction"]["data"]) - want[0].ravel()).max() <= 1e-4
    assert scope == ["theirs", "theirs", "undefined"]


def test_a_model_that_cannot_be_fetched_is_left_off_and_the_others_run(page):
    [manifest, status, ran] = page(
        [
            ["manifest"],
            ["js", "document.getElementById('status').textContent"],
            ["run", "deep", [0.0] * 784, [1, 1, 28, 28]],
        ],
        missing=["models/conv-unpool.onnx"],
    )
    assert [m["name"] for m in manifest["models"]] == ["denoise", "denoise-dense", "deep"]
    assert " Left off: conv-unpool (models/conv-unpool.onnx: HTTP 404 Not Found (http://127.0.0.1:" in status
    assert ".; " not in status  # "Draw a digit.; left off" (trial 95)
    assert ran["reconstruction"]["dims"] == [1, 1, 28, 28]


def test_a_site_without_models_json_says_so_not_a_json_parse_error(page):
    said = page([], missing=["models.json"], loads=False)
    assert "could not load the models: models.json: HTTP 404 Not Found (http://127.0.0.1:" in said
    assert "[page error]" not in said  # the rejection of window.aetool.ready, unhandled (trial 95)


@pytest.mark.parametrize(
    ("served", "said"),
    [
        ("<!doctype html><p>the app</p>", "/models.json) is not JSON: "),  # a single-page app's fallback
        ('{"models": [{"name": "deep"', "/models.json) is not JSON: "),
        ("{}", "/models.json) lists no models: "),
        ('{"models": []}', "/models.json) lists no models: "),
        ('{"models": [{"name": "x"}]}', "/models.json) lists no models: "),
    ],
)
def test_a_models_json_the_page_cannot_read_is_named_with_its_address(page, served, said):
    """The next trial's SPA fallback page, cut file and hand-edited lists gave bare JavaScript errors ("Unexpected
    token '<'", "Cannot read properties of undefined (reading 'map')", "no model could be loaded: ")."""
    out = page([], replace={"models.json": served}, loads=False)
    assert "could not load the models: models.json (http://127.0.0.1:" in out and said in out


def test_onnxruntime_webs_missing_wasm_is_said_once_with_where_it_was_looked_for(page):
    out = page([], missing=["ort/ort-wasm-simd-threaded.wasm"], loads=False)
    status = out.split("status: ", 1)[1]
    assert status.startswith("could not load the models: onnxruntime-web could not start from http://127.0.0.1:")
    assert "/ort/ (ort-wasm-simd-threaded.mjs and .wasm must be served there)" in status
    assert status.count("no available backend") == 1  # it was said once for each model


def _caught(expression: str) -> str:
    return f"(() => {{ try {{ return String({expression}); }} catch (err) {{ return err.message; }} }})()"


def test_the_page_api_says_what_is_wrong_with_a_call(page):
    """The next trial: prepare and run before `ready`, or on a model not on the page, were TypeErrors on null or
    undefined, and an RGBA array of the wrong length gave NaNs without a word."""
    early, unknown, short, ran = page(
        [
            ["js", _caught("window.aetool.prepare('nope', [0, 0, 0, 255], 1, 1)")],
            ["js", _caught("window.aetool.prepare('deep', new Array(10).fill(0), 28, 28)")],
            ["js", "window.aetool.run('nope', [0], [1, 1, 1, 1]).then(String, (err) => err.message)"],
        ],
        early=[["js", _caught("window.aetool.prepare('deep', [0, 0, 0, 255], 1, 1)")]],
    )
    assert early == "the models are not loaded yet: await window.aetool.ready first"
    assert unknown == 'no model "nope" on this page; it has denoise, denoise-dense, conv-unpool, deep'
    assert short == "rgba holds 10 values; a 28×28 image has 4 × 28 × 28 = 3136"
    assert ran == unknown


@pytest.mark.parametrize(
    ("query", "unisolated", "threads", "note"),
    [
        ("threads=1.5", False, "default", "?threads=1.5 is not a whole number ≥ 1"),
        ("threads=-1", False, "default", "?threads=-1 is not a whole number ≥ 1"),
        ("threads=2", True, "one", "?threads=2: threads need a cross-origin isolated page (COOP/COEP headers)"),
        ("threads=99999", False, "cores", "?threads=99999 is more than the CORES cores this browser reports"),
    ],
)
def test_a_thread_count_the_page_cannot_use_is_said_with_the_count_it_runs(page, query, unisolated, threads, note):
    """A trial's ?threads=-1 and 1.5 were passed to onnxruntime-web as they were, and ?threads=2 without the
    isolation headers was reported as 2 threads while onnxruntime-web ran one; the next trial's ?threads=99999999999
    grew the browser to 16.5 GB."""
    [used, status] = page(
        [["js", "window.aetool.threads"], ["js", "document.getElementById('status').textContent"]],
        url=f"index.html?{query}",
        unisolated=unisolated,
    )
    cores = os.cpu_count() or 1
    assert used == {"default": min(4, cores), "one": 1, "cores": cores}[threads]
    note = note.replace("CORES", str(cores))
    assert f"(wasm in a worker, {used} thread{'s' if used > 1 else ''}: {note})" in status


RUN_WHILE_A_TIMER_WAITS = """(async () => {
  let fired = false;
  setTimeout(() => { fired = true; }, 0);
  await window.aetool.run('denoise', new Array(512 * 512).fill(0.5), [1, 1, 512, 512]);
  return [window.aetool.proxied, fired];
})()"""


@pytest.mark.parametrize(("query", "answers"), [("", True), ("?proxy=0", False)])
def test_the_page_answers_while_a_large_image_runs_in_onnxruntime_webs_worker(page, query, answers):
    """A trial found the page frozen while a large image ran (onnxruntime-web on the page's thread: 0.6 s for
    `denoise` on 512×512 here, four models about 1.2 s); in its worker, a timer set as a run begins fires before
    the run ends. ?proxy=0 (the speed benchmark's) keeps the page's thread, and the timer waits for the run."""
    [[proxied, fired]] = page([["js", RUN_WHILE_A_TIMER_WAITS]], url=f"index.html{query}")
    assert proxied == answers and fired == answers
