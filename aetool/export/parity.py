"""Does an ONNX graph compute what the PyTorch model computes? Compare every output on fixed inputs; refuse if not.

Validation only, kept apart from conversion as optimum-onnx does, but stricter: a failed check raises
``ParityError`` and the exporter writes nothing, where optimum only warns.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from aetool.check import NON_SQUARE, Case, tie_images, tolerance
from aetool.errors import AetoolError, ContractError
from aetool.export.onnx_export import EXAMPLE_SIZE
from aetool.models.base import shaped_reconstruction
from aetool.runtime import contract
from aetool.runtime.session import session_options

BATCHES = (1, 3, 64)
TEST_CASE_PIXELS = 2**20  # pixels of an image plane over the test images of one parity case

Reference = Callable[[np.ndarray], dict[str, np.ndarray]]


class ParityError(AetoolError):
    """The exported graph does not reproduce PyTorch within the tolerance (or a variant lost too much accuracy, or a
    portable graph fails in a runtime installed here)."""


def as_images(images: np.ndarray) -> np.ndarray:
    """N×H×W or N×C×H×W images, uint8 or floats in [0, 1] → N×C×H×W float32 in [0, 1], the graphs' input."""
    images = np.asarray(images)
    scaled = images.astype(np.float32) / 255.0 if images.dtype == np.uint8 else images.astype(np.float32)
    return scaled if scaled.ndim == 4 else scaled[:, None]


def image_cases(
    *,
    channels: int,
    size: tuple[int, int] | None,
    unpool: bool,
    multiple_of: int | None = None,
    test_images: np.ndarray | None = None,
) -> list[Case]:
    """Random images at batch 1, 3 and 64 (of the model's fixed ``size``, else 28×28 rounded up to ``multiple_of``),
    up to 64 test images if given (N×C×H×W float32), 32×48 (rounded up likewise) for models of any size, and ties
    for unpooling models."""
    rng = np.random.default_rng(0)
    shape = (channels, *(size or contract.rounded_up(EXAMPLE_SIZE, multiple_of)))
    cases = [Case(f"random b{n}", rng.random((n, *shape), dtype=np.float32)) for n in BATCHES]
    if test_images is not None:
        cases += test_image_cases(test_images[:64])
    if size is None:
        height, width = contract.rounded_up(NON_SQUARE, multiple_of)
        cases.append(Case(f"random {height}×{width} b3", rng.random((3, channels, height, width), dtype=np.float32)))
    if unpool:
        cases.append(Case("ties b4", tie_images(channels=channels)))
    return cases


def test_image_cases(images: np.ndarray) -> list[Case]:
    """N×C×H×W float32 test images as parity cases, each of at most ``TEST_CASE_PIXELS`` pixels an image plane
    (one image at least): ``test images b64`` for 64 digits, ``test images 1–4 of 20`` and so on for 20 colour
    640×360 frames, which in one case took 8.4 GB in PyTorch (a trial)."""
    per_case = max(1, TEST_CASE_PIXELS // (images.shape[-2] * images.shape[-1]))
    if per_case >= len(images):
        return [Case(f"test images b{len(images)}", images)]
    cases = []
    for start in range(0, len(images), per_case):
        part = images[start : start + per_case]
        cases.append(Case(f"test images {start + 1}–{start + len(part)} of {len(images)}", part))
    return cases


def code_cases(code_shape: tuple[int, ...]) -> list[Case]:
    """Random codes of the decoder's code shape (C×h×w or D per item) at batch 1, 3 and 64, plus 8×12 for conv."""
    rng = np.random.default_rng(1)
    cases = [Case(f"random code b{n}", rng.standard_normal((n, *code_shape), dtype=np.float32)) for n in BATCHES]
    if len(code_shape) == 3:
        size = (code_shape[0], NON_SQUARE[0] // 4, NON_SQUARE[1] // 4)
        cases.append(Case(f"random code {size[1]}×{size[2]} b3", rng.standard_normal((3, *size), dtype=np.float32)))
    return cases


def torch_reference(module: nn.Module, output_names: tuple[str, ...]) -> Reference:
    """What PyTorch computes for an input batch, by output name."""

    def run(inputs: np.ndarray) -> dict[str, np.ndarray]:
        with torch.no_grad():
            outputs = module(torch.from_numpy(inputs))
        outputs = outputs if isinstance(outputs, tuple) else (outputs,)
        return {name: out.numpy() for name, out in zip(output_names, outputs, strict=True)}

    return run


def float64_reference(module: nn.Module, output_names: tuple[str, ...]) -> Reference:
    """What a float64 copy of ``module`` computes for an input batch (outputs float64, by name): the exact result
    that both PyTorch's float32 and the exported graph approximate. The copy is made at the first call, so a check
    that never needs it costs nothing."""

    @cache
    def run() -> Reference:
        return torch_reference(copy.deepcopy(module).double().eval(), output_names)

    return lambda inputs: run()(inputs.astype(np.float64))


def check_module(net: nn.Module, cases: list[Case], *, atol: float) -> None:
    """Refuse, before any graph is made, a network (in eval mode) that breaks what every exported file promises:
    on the first case it runs twice, the two reconstructions must agree within ``atol`` (a random operation cannot
    be a fixed graph, and parity against a random reference was settled by chance); on it and on the test images
    (a case named ``test images…``) the reconstruction must have the input's N×C×H×W shape and values in [0, 1].
    Raises ``ContractError`` naming what is wrong (README, Adding a model)."""

    def reconstruct(case: Case) -> np.ndarray:
        what = f"the model's reconstruction of {case.name} ({'×'.join(map(str, case.inputs.shape))})"
        return shaped_reconstruction(net, torch.from_numpy(case.inputs), what=what).numpy()

    first = cases[0]
    once, again = reconstruct(first), reconstruct(first)
    for case in (first, *(case for case in cases if case.name.startswith("test images"))):
        output = once if case is first else reconstruct(case)
        low, high = float(output.min()), float(output.max())
        if not (low >= 0.0 and high <= 1.0):
            raise ContractError(
                f"the model's reconstruction of {case.name} spans {low:.4g} to {high:.4g}: aetool's reconstructions "
                "are images in [0, 1]; end the decoder in a sigmoid or a clamp (README, Adding a model)"
            )
    differ = float(np.abs(once.astype(np.float64) - again).max(initial=0.0))
    if not differ <= atol:
        raise ContractError(
            f"the model's reconstruction of one input differs between two runs by up to {differ:.3g}: it holds a "
            "random operation (noise, or dropout in eval mode), which no exported graph can reproduce"
        )


def cpu_session(model: onnx.ModelProto) -> ort.InferenceSession:
    """An onnxruntime CPU session: the runtime every exported file must run on, with the options the runtime opens
    files with (``aetool.runtime.session.session_options``: threads sized to the CPUs this process may use, int8
    products exact on CPUs without VNNI)."""
    return ort.InferenceSession(model.SerializeToString(), session_options(None), providers=["CPUExecutionProvider"])


def run_session(session: ort.InferenceSession, inputs: np.ndarray) -> dict[str, np.ndarray]:
    """All outputs of a one-input session, by name."""
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {session.get_inputs()[0].name: inputs}), strict=True))


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class OutputCheck:
    """One output of one case: shape agreement and the absolute differences from PyTorch."""

    case: str
    output: str
    shape: tuple[int, ...]
    max_abs: float
    mean_abs: float
    tolerance: float
    ok: bool
    problem: str = ""

    def line(self) -> str:
        mark = "✓" if self.ok else "✗"
        relation = "≤" if self.ok else ">"
        detail = self.problem or (
            f"max abs {self.max_abs:.2e} {relation} {self.tolerance:.1e}  mean abs {self.mean_abs:.2e}"
        )
        return f"  {mark} {self.case:<20} {self.output:<15} {self.shape!s:<18} {detail}"

    def to_dict(self) -> dict[str, Any]:
        record = {
            "case": self.case,
            "output": self.output,
            "shape": list(self.shape),
            "max_abs": _finite(self.max_abs),
            "mean_abs": _finite(self.mean_abs),
            "tolerance": self.tolerance,
            "ok": self.ok,
        }
        return record | ({"problem": self.problem} if self.problem else {})


@dataclass
class ParityReport:
    """Every output of every case, ONNX against PyTorch, with the tolerance they were held to."""

    graph: str
    atol: float
    checks: list[OutputCheck] = field(default_factory=list)
    reference: str = "PyTorch"  # what the graph is held to
    scales: dict[str, float] = field(default_factory=dict)  # outputs whose tolerance grows with a scale (compare())

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(check.ok for check in self.checks)

    @property
    def worst_max_abs(self) -> float:
        return max((c.max_abs for c in self.checks), default=math.nan)

    def lines(self) -> list[str]:
        failed = sum(not c.ok for c in self.checks)
        verdict = "passed" if self.passed else f"FAILED ({failed} of {len(self.checks)})"
        scaled = "".join(f"; {name} × max(1, {scale:.3g}, max|{name}|)" for name, scale in self.scales.items())
        return [
            f"parity of the {self.graph} graph with {self.reference} (max abs ≤ {self.atol:g} × max(1, max|output|)"
            f"{scaled}): {verdict}",
            *(check.line() for check in self.checks),
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "graph": self.graph,
            "passed": self.passed,
            "atol": self.atol,
            **({"scales": self.scales} if self.scales else {}),
            "cases": [check.to_dict() for check in self.checks],
        }

    def raise_if_failed(self) -> None:
        """Refuse the export: the one-line message names the worst disagreement."""
        if self.passed:
            return
        bad = [c for c in self.checks if not c.ok]
        worst = max(bad, key=lambda c: c.max_abs if math.isfinite(c.max_abs) else math.inf)
        why = worst.problem or f"max abs {worst.max_abs:.3g} > {worst.tolerance:.3g}"
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise ParityError(
            f"the ONNX {self.graph} graph disagrees with {self.reference} on {worst.case!r} "
            f"{worst.output}: {why}{more}; nothing was written"
        )


def compare(
    case: str, name: str, got: np.ndarray | None, want: np.ndarray, atol: float, *, scale: float = 1.0
) -> OutputCheck:
    """One output of one case: missing, misshapen, or its largest absolute difference against the tolerance
    (``aetool.check.tolerance``: ``atol`` for outputs within [-1, 1], growing with the output's magnitude beyond),
    or ``atol`` × ``scale`` where that is more: the magnitude an output's rounding grows with when it exceeds the
    output's own (a detector's score: see ``ExportSpec.scales``)."""
    allowed = max(tolerance(atol, want), atol * scale)
    if got is None:
        return OutputCheck(
            case, name, tuple(want.shape), math.inf, math.inf, allowed, False, "missing from the ONNX graph"
        )
    if got.shape != want.shape:
        return OutputCheck(
            case,
            name,
            tuple(got.shape),
            math.inf,
            math.inf,
            allowed,
            False,
            f"shape {tuple(got.shape)} but PyTorch gives {tuple(want.shape)}",
        )
    diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
    max_abs, mean_abs = float(diff.max(initial=0.0)), float(diff.mean()) if diff.size else 0.0
    return OutputCheck(case, name, tuple(got.shape), max_abs, mean_abs, allowed, max_abs <= allowed)


NEAR_TIE_SHARE = 1e-3  # of an output's values; near-tie flips measured 0.013–0.069 % of a reconstruction's


def _positions(count: int) -> str:
    return f"{count} position{'s' * (count != 1)}"


def check_parity(
    session: ort.InferenceSession,
    reference: Reference,
    cases: list[Case],
    *,
    atol: float,
    graph: str,
    against: str = "PyTorch",
    scales: dict[str, float] | None = None,
    exact: Reference | None = None,
    near_ties: bool = False,
) -> ParityReport:
    """Run onnxruntime and the ``reference`` (PyTorch unless ``against`` names another) on every case and compare
    every output the reference gives (``scales``: see :func:`compare`).

    ``exact`` (the reference in float64, :func:`float64_reference`) settles an output that misses the tolerance: it
    passes when onnxruntime is no farther from the float64 result than the float32 reference itself is, plus the
    tolerance, or, with ``near_ties`` (a model that max-unpools), since the two pick at different near-ties, when
    it is off float64 (beyond the tolerance) at no more positions than twice the float32 reference is, or than
    ``NEAR_TIE_SHARE`` of the output's values. Max-unpooling needs this on real images: where two values
    of a pooling window differ by less than float32's rounding (near-ties, hundreds of them in a photograph), which
    one is the maximum depends on the order of the sums before it, and the two float32 computations pick
    differently at different ones; which of them lands farther from float64 is chance (three `conv-unpool` runs on
    photos on an AVX2 CPU: onnxruntime off at 340, 36 and 149 positions by up to 2.2e-2, 7.1e-3 and 3.6e-2,
    PyTorch's float32 at 468, 10 and 12 by up to 1.8e-2, 3.2e-5 and 1.3e-2; a detector's smoothed anomaly map
    spreads each flip: 878 positions, 0.13 %, against PyTorch's 1,117). A graph that unpools wrongly moves
    most windows' values; ties that are exact are held exactly by the tie cases (the float64 result picks as
    PyTorch does).
    """
    report = ParityReport(graph, atol, reference=against, scales=scales or {})
    for case in cases:
        got = run_session(session, case.inputs)
        exact_outputs: dict[str, np.ndarray] | None = None
        for name, want in reference(case.inputs).items():
            scale = (scales or {}).get(name, 1.0)
            check = compare(case.name, name, got.get(name), want, atol, scale=scale)
            if not check.ok and exact is not None and name in got and got[name].shape == want.shape:
                exact_outputs = exact_outputs or exact(case.inputs)
                own_errors = np.abs(want.astype(np.float64) - exact_outputs[name])
                off_errors = np.abs(got[name].astype(np.float64) - exact_outputs[name])
                own, off = float(own_errors.max(initial=0.0)), float(off_errors.max(initial=0.0))
                own_n, off_n = int((own_errors > check.tolerance).sum()), int((off_errors > check.tolerance).sum())
                moved = max(2 * own_n, off_errors.size * NEAR_TIE_SHARE) if near_ties else -1
                settled = off <= own + check.tolerance or off_n <= moved
                allowed = f" (near-ties allowed at up to {math.floor(moved)})" if near_ties and not settled else ""
                check = replace(
                    check,
                    ok=settled,
                    problem=f"max abs {check.max_abs:.2e} from {against}, near-ties: {off:.2e} from float64 at "
                    f"{_positions(off_n)}{allowed}, {against}'s own float32 {own:.2e} at {_positions(own_n)}",
                )
            report.checks.append(check)
    return report
