"""The report's two pages, index.html and README.md, rendered from one list of sections.

Both work offline: plain HTML with its style inline, images as relative ``<img>`` files beside the page.
"""

from __future__ import annotations

import html
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from aetool.errors import AetoolError
from aetool.runtime.signals import interrupts_held

PAGE_ENTRIES = ("index.html", "README.md", "figures")  # what a page writes, beside its numbers file


@dataclass
class Figure:
    """A figure of a section: a PNG file beside the page and its caption."""

    file: str  # relative to the page
    caption: str


@dataclass
class Table:
    """A table of a section: header, rows of text cells, and an optional note under it."""

    header: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass
class Section:
    """One section of the report: a title and its blocks (paragraphs, figures, tables) in order."""

    title: str
    blocks: list[str | Figure | Table] = field(default_factory=list)  # a str is one paragraph

    @property
    def anchor(self) -> str:
        return "-".join(re.findall(r"[a-z0-9]+", self.title.lower()))


STYLE = """
body { font-family: system-ui, sans-serif; max-width: 70em; margin: 2em auto; padding: 0 1em; line-height: 1.45; }
table { border-collapse: collapse; margin: 0.6em 0 1.2em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
td { font-variant-numeric: tabular-nums; }
figure { margin: 1em 0 1.6em; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption, caption { color: #444; font-size: 0.92em; }
caption { caption-side: bottom; text-align: left; padding-top: 0.3em; }
"""


def _html_block(block: str | Figure | Table) -> str:
    if isinstance(block, Figure):
        return (
            # the caption names the figure for everyone; an alt of the same words had a screen reader read them twice
            f'<figure><img src="{html.escape(block.file)}" alt="">'
            f"<figcaption>{html.escape(block.caption)}</figcaption></figure>"
        )
    if isinstance(block, Table):
        head = "".join(f"<th>{html.escape(cell)}</th>" for cell in block.header)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in block.rows
        )
        caption = f"<caption>{html.escape(block.caption)}</caption>" if block.caption else ""  # read with the table
        return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return f"<p>{html.escape(block)}</p>"


def write_html(path: Path, title: str, intro: list[str], sections: list[Section]) -> Path:
    """Write the report as one offline HTML page (inline styles, relative images) at ``path``; returns ``path``."""
    contents = "".join(f'<li><a href="#{s.anchor}">{html.escape(s.title)}</a></li>' for s in sections)
    parts = [
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>',
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
        *(f"<p>{html.escape(p)}</p>" for p in intro),
        f"<ul>{contents}</ul>",
    ]
    for section in sections:
        parts.append(f'<section id="{section.anchor}"><h2>{html.escape(section.title)}</h2>')
        parts.extend(_html_block(block) for block in section.blocks)
        parts.append("</section>")
    parts.append("</body></html>\n")
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def _markdown_cell(text: str) -> str:
    return text.replace("|", "\\|")


def _markdown_block(block: str | Figure | Table) -> str:
    if isinstance(block, Figure):
        return f"![]({block.file})\n\n*{block.caption}*"  # named once, as on the HTML page (its alt twice: a trial)
    if isinstance(block, Table):
        lines = [
            "| " + " | ".join(map(_markdown_cell, block.header)) + " |",
            "|" + "---|" * len(block.header),
            *("| " + " | ".join(map(_markdown_cell, row)) + " |" for row in block.rows),
        ]
        return "\n".join(lines) + (f"\n\n*{block.caption}*" if block.caption else "")
    return block


def write_markdown(path: Path, title: str, intro: list[str], sections: list[Section]) -> Path:
    """Write the report as Markdown at ``path`` (figures as relative image links); returns ``path``."""
    parts = [f"# {title}", *intro]
    for section in sections:
        parts.append(f"## {section.title}")
        parts.extend(_markdown_block(block) for block in section.blocks)
    path.write_text("\n\n".join(parts) + "\n", encoding="utf-8")
    return path


def check_page_folder(out: Path, *, numbers: str) -> None:
    """Refuse to write a page into ``out`` when it is a file, or when it holds an ``index.html``, ``README.md`` or
    ``figures`` that are not an earlier page's (told by its ``numbers`` file, e.g. ``numbers.json``): writing would
    replace them. Other files in ``out`` are never touched. Raises ``AetoolError``."""
    if out.exists() and not out.is_dir():
        raise AetoolError(f"cannot write the page to {out}: it is a file; name a folder")
    held = [name for name in PAGE_ENTRIES if (out / name).exists()]
    if held and not (out / numbers).is_file():
        raise AetoolError(
            f"cannot write the page to {out}: it holds {', '.join(held)} of something else (no {numbers} of an "
            "earlier page); name a new or empty folder, or an earlier page's"
        )


@contextmanager
def staged_page(out: Path, *, numbers: str) -> Iterator[Path]:
    """A hidden folder beside ``out`` to write a page into (``PAGE_ENTRIES`` and ``numbers``); when the block ends,
    its entries replace those of the same names in ``out`` (an earlier page's, whose old figures then go too), with
    Ctrl-C held for the moves. On an error or Ctrl-C inside the block the folder is removed and ``out`` stays as it
    was: never half a page. Raises ``AetoolError`` as :func:`check_page_folder`."""
    check_page_folder(out, numbers=numbers)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent))
    try:
        yield stage
        with interrupts_held():
            out.mkdir(exist_ok=True)
            for entry in stage.iterdir():
                target = out / entry.name
                if target.is_dir() and not target.is_symlink():
                    shutil.rmtree(target)
                elif target.exists() or target.is_symlink():
                    target.unlink()
                entry.rename(target)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
