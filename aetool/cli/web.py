"""``web``: the page that runs the bundled models in the browser, and its server."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer

from aetool.cli.app import app
from aetool.cli.output import note, reporting
from aetool.errors import AetoolError


@app.command()
def web(
    output: Annotated[
        str, typer.Option("--output", "-o", help="Folder for the site (created).", metavar="DIR", show_default=False)
    ],
    ort_web: Annotated[
        Path | None,
        typer.Option(
            "--ort-web",
            metavar="DIR",
            help="Where onnxruntime-web's ort.wasm.min.js, ort-wasm-simd-threaded.mjs and .wasm are: its npm "
            "package's dist/, the package itself, or a node_modules folder (or the folder above it) holding it. "
            "Default: $AETOOL_ORT_WEB, else web/node_modules of a clone (npm ci --prefix web).",
            show_default=False,
        ),
    ] = None,
    serve: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=65535,
            metavar="PORT",
            help="Then serve the site on PORT of --host, http://127.0.0.1:PORT by default (with the headers that "
            "let it use threads), until Ctrl-C; 0 picks a free port.",
            show_default=False,
        ),
    ] = None,
    host: Annotated[
        str,
        typer.Option(
            metavar="ADDRESS",
            help="The address --serve listens on: 0.0.0.0 (or :: for IPv6) for every address of this machine, so "
            "that other devices reach it (the page then runs on one thread there: browsers allow threads on "
            "https or localhost only).",
        ),
    ] = "127.0.0.1",
    models: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            "-m",
            metavar="NAME",
            help="A bundled model to put on the page (repeat for more, in that order). Default: every one.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Write a static page that runs the bundled models in the browser with onnxruntime-web: draw or drop a digit,
    see it denoised and reconstructed, all computed in the page. Serve the folder over HTTP (browsers do not load
    WebAssembly modules from file:// pages); --serve on a site already written, where onnxruntime-web's files are
    not at hand to rebuild it, serves it as it is."""
    with reporting():
        from aetool.web import build_site, holds_site, nowhere_to_rebuild, server, site_urls

        if output == "":  # as a Path it was ".", and the site went into the current folder
            raise AetoolError("-o is an empty name; give a folder (. for the current one)")
        folder = Path(output)
        if host != "127.0.0.1" and serve is None:
            raise AetoolError("--host is the address --serve listens on; give --serve PORT too")
        try:  # the port first: a taken one is said before the site is written
            httpd = None if serve is None else server(folder, port=serve, host=host)
        except OSError as err:
            where = f"port {serve}" if host == "127.0.0.1" else f"{host} port {serve}"
            raise AetoolError(f"cannot serve on {where}: {err.strerror or err}") from None
        try:
            if httpd is not None and holds_site(folder) and nowhere_to_rebuild(given=ort_web):
                note(
                    f"serving the site already in {folder} as it was last written (with the models it held then): "
                    "onnxruntime-web's files, to rebuild it, are not under web/node_modules"
                )
            else:
                site = build_site(folder, ort_web=ort_web, models=models or ())
                version = f" {site.ort_web_version}" if site.ort_web_version else ""
                note(
                    f"wrote {site.folder}: {', '.join(site.models)} and onnxruntime-web{version} (wasm), "
                    f"{site.bytes / 1e6:.1f} MB"
                )
                if site.missing:
                    note(f"warning: left off the page, their files missing: {', '.join(site.missing)}")
                for refused in site.refused:
                    note(f"warning: left off the page, {refused}")
                for name in site.detectors:  # put on the page without a word (trial 95)
                    note(
                        f"{name} is an anomaly detector: the page shows its reconstruction only, not its score or "
                        "map (aetool detect --heatmaps DIR draws them)"
                    )
            if httpd is None:
                shown = shlex.quote(output)  # a folder with a space in its name, pasted as it is printed
                note(
                    f"serve it over HTTP, e.g. aetool web -o {shown} --serve 8000, or python3 -m http.server -d {shown}"
                )
                return
            try:  # the line first inside: a Ctrl-C as soon as it is read stops the server too, not an error
                note(f"serving {_served_at(site_urls(httpd))} (Ctrl-C to stop)")
                httpd.serve_forever()
            except KeyboardInterrupt:  # how a server is stopped: not an error
                note("stopped")
        finally:
            if httpd is not None:
                httpd.server_close()


def _served_at(urls: list[str]) -> str:
    """Where the site is served, in words: the first address, then those of other devices (``web.site_urls``)."""
    return urls[0] if len(urls) == 1 else f"{urls[0]}, from other devices {', '.join(urls[1:])}"
