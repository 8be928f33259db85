"""Peak memory of large pages through a conv model in one process, with onnxruntime's memory pattern on or off.

    /usr/bin/time -f "%e s %M KB" python benchmarks/page_memory.py --pages 2 --size 4096 [--pattern] [--model M]

Runs ``--pages`` random pages of ``--size``×``--size`` through ``Model.reconstruct`` one after another, as
``aetool reconstruct`` does for a folder of pages. aetool turns the memory pattern off (``session_options``);
``--pattern`` turns it back on, to measure what that costs: the pattern keeps the first call's plan and its block
of memory, so a second page peaked at about twice one page's memory (see the README's Safety section).
"""

from __future__ import annotations

import argparse

import numpy as np
from one_line_errors import run_script

from aetool.runtime import session
from aetool.runtime.model import load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=2)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--pattern", action="store_true", help="turn onnxruntime's memory pattern back on")
    parser.add_argument("--model", default="conv-unpool")
    args = parser.parse_args()
    if args.pattern:
        aetool_options = session.session_options

        def with_pattern(threads: int | None) -> object:
            options = aetool_options(threads)
            options.enable_mem_pattern = True
            return options

        session.session_options = with_pattern
    loaded = load(args.model)
    for index in range(args.pages):
        page = np.random.default_rng(index).random((1, loaded.input_spec.channels, args.size, args.size), np.float32)
        loaded.reconstruct(page)
    print(f"{args.pages} pages of {args.size}×{args.size} through {loaded.name}, memory pattern {args.pattern}")


if __name__ == "__main__":
    run_script(main)
