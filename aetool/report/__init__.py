"""The reproduction report (needs the ``train`` extra): every experiment of the EE6132 report, as HTML and Markdown.

``runs`` prepares the run folders, ``inference`` runs models (ONNX first), ``experiments`` computes the numbers,
``figures`` draws them, ``sections`` writes them up, ``page`` renders the pages and ``build`` ties them together.
"""

from aetool.report.build import build_report

__all__ = ["build_report"]
