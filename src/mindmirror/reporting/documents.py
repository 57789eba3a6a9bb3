"""The report's documents: its sections, rendered as Markdown and as self-contained HTML."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Section:
    """One part of the report: a title, Markdown body lines and plot file names."""

    title: str
    lines: list[str] = field(default_factory=list)
    plots: list[str] = field(default_factory=list)


def markdown_document(title: str, sections: list[Section]) -> str:
    """``sections`` under ``title`` as Markdown, plots linked from ``plots/``."""
    out = [f"# {title}", ""]
    for section in sections:
        out += [f"## {section.title}", "", *section.lines, ""]
        out += [f"![{name}](plots/{name})" for name in section.plots]
        out.append("")
    return "\n".join(out)


def html_document(title: str, sections: list[Section], plots: Path) -> str:
    """``sections`` under ``title`` as one self-contained HTML page: Markdown tables become
    HTML tables, and the plots (read from ``plots``) are embedded as base64 PNG."""
    style = (
        "body{font-family:sans-serif;max-width:960px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;"
        "padding:.25em .6em;text-align:left}img{max-width:100%}"
    )
    out = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
        f"</title><style>{style}</style></head><body><h1>{html.escape(title)}</h1>"
    ]
    for section in sections:
        out.append(f"<h2>{html.escape(section.title)}</h2>")
        out.append(_lines_html(section.lines))
        for name in section.plots:
            data = base64.b64encode((plots / name).read_bytes()).decode("ascii")
            out.append(f"<p><img alt='{html.escape(name)}' src='data:image/png;base64,{data}'></p>")
    out.append("</body></html>")
    return "\n".join(out)


def _lines_html(lines: list[str]) -> str:
    """Markdown tables become HTML tables; other lines become paragraphs."""
    out, table = [], []
    for line in [*lines, ""]:
        if line.startswith("|"):
            table.append(line)
            continue
        if table:
            cells = [[c.strip() for c in row.strip("|").split("|")] for row in table]
            head = "".join(f"<th>{html.escape(c)}</th>" for c in cells[0])
            body = "".join(
                "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                for row in cells[2:]
            )
            out.append(f"<table><tr>{head}</tr>{body}</table>")
            table = []
        if line.strip():
            out.append(f"<p>{html.escape(line)}</p>")
    return "\n".join(out)
