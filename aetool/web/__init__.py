"""``aetool web``: a static page that runs the bundled models in the browser with onnxruntime-web (wasm).

The site is plain files, nothing fetched from the internet when it runs:

    index.html, app.js, style.css   the page (from ``aetool/web/page/``)
    models.json                     each model's file, summary, role and input spec, read from its metadata
    models/NAME.onnx                the bundled models, each under its name (their decoders are not needed)
    ort/                            onnxruntime-web's wasm build: ``ORT_FILES``, from the npm package

onnxruntime-web is not a Python package: its files come from npm at build time (``web/package.json`` pins the
version; ``npm ci --prefix web`` in a clone puts them under ``web/node_modules``), and :func:`find_ort_web` looks
for them there or where ``--ort-web`` says. Browsers refuse to load the wasm module from ``file://`` pages, so the
site must be served over HTTP; :func:`server`'s handler adds the two headers that let onnxruntime-web use threads.
Torch-free, like the runtime.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import ipaddress
import json
import os
import re
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aetool.errors import AetoolError, ModelFileError, os_reason
from aetool.runtime import contract
from aetool.runtime.describe import BundledModel, bundled_models
from aetool.runtime.files import NAME_MAX, check_folder, write_files
from aetool.runtime.model import Model, trained_noise
from aetool.runtime.noise import Noise
from aetool.runtime.onnxfile import read_facts
from aetool.runtime.registry import INDEX, models_dir

PAGE = Path(__file__).with_name("page")
PAGE_FILES = ("index.html", "app.js", "style.css")
PAGE_SIZE = (28, 28)  # the digits the page draws and feeds a model of any size (app.js), rounded up to its multiple
ORT_FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
ORT_WEB_ENV = "AETOOL_ORT_WEB"
PACKAGE = Path("node_modules") / "onnxruntime-web"
CLONE_WEB = Path(__file__).resolve().parents[2] / "web"  # web/ of a clone (editable installs run from one)
ISOLATION = {"Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp"}
STEM_MAX = NAME_MAX - 16  # room for "-NNN.onnx" and a writer's temporary suffix
WASM_MAGIC = b"\0asm"  # the first bytes of every WebAssembly module
ROUTE_PROBES = {socket.AF_INET: "192.0.2.1", socket.AF_INET6: "2001:db8::1"}  # RFC 5737 / 3849: documentation only


@dataclass(frozen=True)
class Site:
    """What :func:`build_site` wrote: the folder, the models in it, and the onnxruntime-web version it holds."""

    folder: Path
    models: list[str]
    ort_web_version: str | None
    bytes: int  # the whole site
    missing: list[str]  # models whose file the models' index lists but is not there, as "NAME (PATH)": left off
    refused: list[str] = field(default_factory=list)  # models the page cannot run, as "NAME: why": left off
    detectors: list[str] = field(default_factory=list)  # anomaly detectors on the page: it shows reconstructions only


def _candidates(given: str | Path | None) -> Iterator[Path]:
    """Folders that may hold ``ORT_FILES``: the one given (a dist folder, the npm package or a node_modules
    folder, or a folder holding that), else ``$AETOOL_ORT_WEB``, else web/ of a clone and of the working folder."""
    roots = [Path(given)] if given else [Path(os.environ[ORT_WEB_ENV])] if os.environ.get(ORT_WEB_ENV) else []
    if not roots:
        roots = [CLONE_WEB, Path("web")]
    for root in roots:
        yield from (root, root / "dist", root / "onnxruntime-web" / "dist", root / PACKAGE / "dist")


def find_ort_web(*, given: str | Path | None = None) -> Path:
    """The folder holding onnxruntime-web's ``ORT_FILES`` (see :func:`_candidates` for where it looks); raises
    ``AetoolError`` saying how to get them when none does."""
    for folder in _candidates(given):
        if all((folder / name).is_file() for name in ORT_FILES):
            _check_wasm(folder / ORT_FILES[-1])
            return folder
    named = os.environ.get(ORT_WEB_ENV)
    if given:
        where = f"in {given}"
    elif named:
        where = f"in {named} (${ORT_WEB_ENV})"
    else:
        searched = dict.fromkeys(str(root / "node_modules") for root in (CLONE_WEB, Path("web").absolute()))
        where = f"under {' or '.join(searched)} (run: npm ci --prefix web, in a clone of aetool)"
    other = "" if given else ", or pass --ort-web DIR"
    raise AetoolError(
        f"onnxruntime-web's files ({', '.join(ORT_FILES)}) are not {where}; see the README's 'In the browser'{other}"
    )


def _check_wasm(path: Path) -> None:
    """Raise ``AetoolError`` when ``path`` is not a WebAssembly module (its first bytes, ``WASM_MAGIC``): files of
    the right names and the wrong contents made a site that could not run."""
    try:
        with path.open("rb") as stream:
            start = stream.read(len(WASM_MAGIC))
    except OSError as err:
        raise AetoolError(f"cannot read {path}: {os_reason(err)}") from None
    if start != WASM_MAGIC:
        raise AetoolError(f"{path} is not a WebAssembly module (it does not start with \\0asm): not onnxruntime-web's")


def nowhere_to_rebuild(*, given: str | Path | None) -> bool:
    """Whether a site has no onnxruntime-web files to be built with: no place named (``given``, ``--ort-web``, or
    ``$AETOOL_ORT_WEB``; a place named but wrong stays an error) and none under web/ of a clone."""
    if given or os.environ.get(ORT_WEB_ENV):
        return False
    try:
        find_ort_web()
    except AetoolError:
        return True
    return False


def ort_web_version(folder: Path) -> str | None:
    """The version in the npm package's package.json above a dist folder, when there is one."""
    manifest = folder.parent / "package.json"
    try:
        version = json.loads(manifest.read_text()).get("version")
    except (OSError, ValueError):
        return None
    return version if isinstance(version, str) else None


def site_files(names: list[str]) -> dict[str, str]:
    """The file each model gets under the site's ``models/``: its name, with characters outside letters, digits,
    ``.``, ``_`` and ``-`` (a leading dot, an empty name) made ``_``, cut to ``STEM_MAX`` characters (a file name
    holds ``NAME_MAX`` bytes), and ``-2``, ``-3``… where two names would share one, case aside (macOS and Windows
    file systems). Not the bundled file's own name: models of your own bundled from run folders are all
    ``model.onnx``."""
    files: dict[str, str] = {}
    for name in names:
        stem = re.sub(r"[^A-Za-z0-9._-]", "_", name)[:STEM_MAX] or "_"
        stem = "_" + stem[1:] if stem.startswith(".") else stem
        file, count = f"{stem}.onnx", 1
        while file.lower() in {taken.lower() for taken in files.values()}:
            count += 1
            file = f"{stem}-{count}.onnx"
        files[name] = file
    return files


def page_noise(noise: Noise) -> tuple[float, str | None]:
    """The noise the page adds for a model trained on ``noise``, as (level, kind): its one level and kind; for a
    range or mix, its one kind (Gaussian when it has Gaussian terms, else its first term's) at half the highest
    level trained on (the bundled blind ``denoise``, Gaussian up to σ 0.6 among others: Gaussian 0.3; ``mask=0:0.3``:
    mask 0.15); (0.0, None) for a model trained on clean images. Kinds and levels are ``runtime.noise.add_noise``'s.
    """
    if not noise:
        return 0.0, None
    if noise.level is not None:
        return noise.level
    kinds = [term.kind for term in noise.terms]
    kind = "gaussian" if "gaussian" in kinds else kinds[0]
    return max(term.high for term in noise.terms if term.kind == kind) / 2, kind


def model_entry(name: str, path: Path, summary: str | None, *, file: str) -> dict[str, Any]:
    """What the page needs to know of a model, from its file: role, input spec, noise, test MSE, target.

    ``role`` is ``denoise`` for a model trained on noisy inputs and ``reconstruct`` otherwise. A denoiser's input
    is noised by the page first (:func:`page_noise`: ``noise_kind`` at the slider's level, which starts at
    ``noise``). Raises ``ModelFileError`` for a file that will not load or breaks the contract, and for one the
    page cannot run: weights in external data files (the page fetches the one file), a float16 input (it feeds
    float32 images), a fixed batch over 1 (it runs one image a call), or a reconstruction of a random image the
    commands would refuse (values outside [0, 1], NaN, another size).
    """
    model = Model(path, threads=1)
    spec = model.input_spec
    external = read_facts(path.read_bytes()).external_data
    if external:
        raise ModelFileError(
            f"{path} keeps its weights in external data ({', '.join(sorted(set(external)))}), which the page does not "
            "fetch; save it as one file: onnx.save(onnx.load(PATH), NEW_PATH)"
        )
    fed = model.session.get_inputs()[0].type
    if fed != "tensor(float)":
        raise ModelFileError(
            f"{path} takes {fed} images; the page feeds float32 ones (an fp16 file of aetool's keeps float32 inputs)"
        )
    if spec.batch not in (None, 1):
        raise ModelFileError(f"{path} takes {spec.batch} images a call; the page runs one at a time")
    height, width = spec.size or contract.rounded_up(PAGE_SIZE, spec.multiple_of)
    model.reconstruct(  # what the commands would refuse of its reconstructions (out of [0, 1], NaN, another size)
        np.random.default_rng(0).random((1, spec.channels, height, width), dtype=np.float32)
    )
    noise = trained_noise(model)
    level, kind = page_noise(noise)
    return {
        "name": name,
        "file": f"models/{file}",
        "summary": summary or name,
        "role": "denoise" if noise else "reconstruct",
        "noise": level,
        "noise_kind": kind,
        "channels": spec.channels,
        "size": list(spec.size) if spec.size else None,
        "multiple_of": spec.multiple_of,
        "polarity": spec.polarity,
        "outputs": [output.name for output in model.session.get_outputs()],
        "test_mse": contract.recorded_test_mse(model.metadata),
        "target": model.metadata.get(contract.TARGET),
        "detector": contract.ANOMALY in model.metadata,  # the page shows its reconstruction, not its score or map
    }


def build_site(folder: str | Path, *, ort_web: str | Path | None = None, models: Sequence[str] = ()) -> Site:
    """Write the page, the bundled models (those named in ``models``, in that order; all when it is empty) and
    onnxruntime-web's files into ``folder``: a new or empty folder, or one holding an earlier site (its files
    replaced, others left alone). Raises ``AetoolError`` when onnxruntime-web's files are not found, when ``folder``
    is a file, holds files of another kind (a site would overwrite its ``index.html``) or cannot be written, when a
    name in ``models`` is not bundled, or when no model is bundled or none of them can run on the page. A model
    whose file will not load, breaks the contract or cannot run on the page (:func:`model_entry`) is left off, with
    the reason in ``Site.refused``, as one whose file is missing is (``Site.missing``)."""
    source = find_ort_web(given=ort_web)
    target = Path(folder)
    if target.exists() and not target.is_dir():
        raise AetoolError(f"cannot write the site to {target}: it is a file; name a folder")
    if target.is_dir() and any(target.iterdir()) and not holds_site(target):
        held = sorted(path.name for path in target.iterdir())
        shown = ", ".join(held[:3]) + (", …" if len(held) > 3 else "")
        raise AetoolError(
            f"cannot write the site to {target}: it holds other files ({shown}); name a new or empty folder, or "
            "the folder of an earlier site"
        )
    check_folder(target)  # a read-only file system said as the image commands say it, before any file is read
    listed = chosen(bundled_models(), models)
    records = [r for r in listed if r.size_bytes is not None]
    missing = [f"{r.name} ({r.path})" for r in listed if r.size_bytes is None]
    if not records:
        gone = f"; the files {INDEX} names are missing: {', '.join(missing)}" if missing else ""
        raise AetoolError(f"no bundled models in {models_dir()} to put on the page{gone}")
    files = site_files([record.name for record in records])
    entries, refused = [], []
    for record in records:
        try:
            entries.append(model_entry(record.name, Path(record.path), record.summary, file=files[record.name]))
        except ModelFileError as err:  # the page's other models still run: one broken file stopped the whole site
            refused.append(f"{record.name}: {err}")
    if not entries:
        raise AetoolError(f"no model in {models_dir()} that the page can run: {'; '.join(refused)}")
    records = [record for record in records if record.name in {entry["name"] for entry in entries}]
    copies: dict[Path, Path] = {target / name: PAGE / name for name in PAGE_FILES}
    copies |= {target / "ort" / name: source / name for name in ORT_FILES}
    copies |= {target / "models" / files[record.name]: Path(record.path) for record in records}
    version = ort_web_version(source)
    manifest = json.dumps({"onnxruntime_web": version, "models": entries}, indent=2) + "\n"
    contents: dict[Path, bytes] = {target / "models.json": manifest.encode()}
    for path, origin in copies.items():
        try:
            contents[path] = origin.read_bytes()
        except OSError as err:
            raise AetoolError(f"cannot read {origin} for the site: {os_reason(err)}") from None
    earlier = site_models(target)  # read before the new models.json replaces the earlier site's
    write_files(contents)  # the whole site, or (a full disk, say) the earlier one as it was
    try:
        for stale in earlier - set(files.values()):  # an earlier site's models that are no longer bundled
            (target / "models" / stale).unlink(missing_ok=True)
    except OSError as err:
        raise AetoolError(f"cannot remove an earlier site's model from {target / 'models'}: {os_reason(err)}") from None
    size = sum(path.stat().st_size for path in target.rglob("*") if path.is_file())
    detectors = [entry["name"] for entry in entries if entry["detector"]]
    return Site(target, [entry["name"] for entry in entries], version, size, missing, refused, detectors)


def chosen(listed: list[BundledModel], names: Sequence[str]) -> list[BundledModel]:
    """The bundled models named in ``names``, in that order (each once), or all of ``listed`` for no names. Raises
    ``AetoolError`` for a name that is not bundled, naming those that are."""
    if not names:
        return listed
    by_name = {record.name: record for record in listed}
    unknown = [name for name in names if name not in by_name]
    if unknown:
        raise AetoolError(
            f"no bundled model named {', '.join(map(repr, unknown))} in {models_dir()}; bundled: {', '.join(by_name)} "
            f"(models of your own: $AETOOL_MODEL_DIR, a folder with a {INDEX})"
        )
    return [by_name[name] for name in dict.fromkeys(names)]


def site_models(folder: Path) -> set[str]:
    """The model files, by name, that the site in ``folder`` lists in its ``models.json`` under ``models/`` (plain
    names only: the files a rebuild may remove; files of yours in ``models/`` are not listed and stay)."""
    try:
        manifest = json.loads((folder / "models.json").read_text())
        entries = manifest["models"] if isinstance(manifest, dict) else []
    except (OSError, ValueError, KeyError):
        return set()
    files = {entry.get("file") for entry in entries if isinstance(entry, dict)} if isinstance(entries, list) else set()
    names = {file.removeprefix("models/") for file in files if isinstance(file, str) and file.startswith("models/")}
    return {name for name in names if name and "/" not in name and name not in (".", "..")}


def holds_site(folder: Path) -> bool:
    """Whether ``folder`` holds a site :func:`build_site` wrote: its ``models.json`` manifest."""
    try:
        manifest = json.loads((folder / "models.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and {"onnxruntime_web", "models"} <= manifest.keys()


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Static files with the headers that make the page cross-origin isolated (SharedArrayBuffer, hence
    onnxruntime-web's wasm threads, and 5 µs rather than 100 µs ``performance.now()``), and no caching."""

    extensions_map = {  # noqa: RUF012 (the base class's attribute, extended)
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".wasm": "application/wasm",
        ".mjs": "text/javascript",
        ".js": "text/javascript",
    }

    def end_headers(self) -> None:
        for name, value in ISOLATION.items():
            self.send_header(name, value)
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: a request log would bury the command's own lines (``http.server``'s method, overridden)."""


class _Server6(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6


def server(folder: str | Path, *, port: int = 0, host: str = "127.0.0.1") -> http.server.ThreadingHTTPServer:
    """An HTTP server for the site in ``folder`` on ``host:port`` (port 0: a free one, see ``server_address``; an
    IPv6 address such as ``::`` for one with a colon); call ``serve_forever`` (or run it in a thread) and
    ``server_close``. Raises ``OSError`` when the port is taken or ``host`` is not an address of this machine."""
    handler = functools.partial(_Handler, directory=str(folder))
    kind = _Server6 if ":" in host else http.server.ThreadingHTTPServer
    return kind((host, port), handler)


def site_urls(httpd: http.server.ThreadingHTTPServer) -> list[str]:
    """Where to open the site ``httpd`` serves, as ``http://HOST:PORT/`` strings: its own address; for a server on
    every address of the machine (``0.0.0.0``, ``::``), this machine's loopback first, then the addresses other
    devices reach it at: the one this machine's route to the network leaves from and those its host name resolves
    to, of the families the socket takes (IPv4 for 0.0.0.0; IPv6 for ::, and IPv4 too on a dual-stack socket),
    loopback and link-local addresses left out. Finding them sends nothing (connecting a UDP socket only picks a
    route); on a machine without a network only the loopback is given."""
    host, port = str(httpd.server_address[0]), httpd.server_address[1]
    if host not in ("0.0.0.0", "::"):
        return [_url(host, port)]
    family = httpd.socket.family
    families = [family]
    if family == socket.AF_INET6 and not httpd.socket.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY):
        families.append(socket.AF_INET)
    found: list[str] = []
    for each in families:
        candidates = []
        with socket.socket(each, socket.SOCK_DGRAM) as probe, contextlib.suppress(OSError):  # OSError: no route
            probe.connect((ROUTE_PROBES[each], 9))
            candidates.append(probe.getsockname()[0])
        with contextlib.suppress(OSError):  # a host name that does not resolve
            candidates += [info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None, each)]
        for address in candidates:
            address = address.split("%")[0]  # an IPv6 scope
            if address not in found and not _local_only(address):
                found.append(address)
    loopback = "::1" if family == socket.AF_INET6 else "127.0.0.1"
    return [_url(address, port) for address in (loopback, *found)]


def _url(host: str, port: int) -> str:
    """``http://HOST:PORT/``, an IPv6 address in brackets."""
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/"


def _local_only(address: str) -> bool:
    """Whether ``address`` (IPv4 or IPv6 text) reaches this machine only or its link only: loopback, link-local,
    unspecified."""
    parsed = ipaddress.ip_address(address)
    return parsed.is_loopback or parsed.is_link_local or parsed.is_unspecified
