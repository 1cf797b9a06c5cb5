"""A small self-contained HTML report: sections of text, tables and embedded PNG figures."""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from claim.data.io import write_text

__all__ = ["Report", "score_text"]

_STYLE = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1150px;margin:2em auto;padding:0 1em;
color:#1d2530;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}
h2{font-size:1.25em;border-bottom:1px solid #d5dbe3;padding-bottom:.2em;margin-top:1.8em}
.sub{color:#5b6675;margin-top:0}table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{border:1px solid #d5dbe3;padding:.3em .6em;text-align:right}th{background:#f1f4f8}
td:first-child,th:first-child{text-align:left}figure{margin:.8em 0}figcaption{color:#5b6675;font-size:.88em}
img{max-width:100%;height:auto;border:1px solid #e3e7ed}.grid{display:flex;flex-wrap:wrap;gap:10px}
.grid figure{flex:1 1 300px;margin:0}code{background:#f1f4f8;padding:0 .25em;border-radius:3px}
"""


@dataclass
class Report:
    """Build a report section by section, then ``save`` one HTML file with every image embedded."""

    title: str
    subtitle: str = ""
    _parts: list[str] = field(default_factory=list)

    def heading(self, text: str) -> None:
        self._parts.append(f"<h2>{html.escape(text)}</h2>")

    def paragraph(self, text: str) -> None:
        self._parts.append(f"<p>{html.escape(text)}</p>")

    def links(self, text: str, items: Sequence[tuple[str, str]]) -> None:
        """A paragraph of ``text`` followed by relative links (label, href), e.g. to other reports of the study."""
        anchors = " · ".join(f'<a href="{html.escape(href)}">{html.escape(label)}</a>' for label, href in items)
        self._parts.append(f"<p>{html.escape(text)} {anchors}</p>")

    def table(self, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>" for row in rows)
        self._parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")

    def figure(self, png: bytes | Path, caption: str = "") -> None:
        self._parts.append(_figure(png, caption))

    def gallery(self, items: Sequence[tuple[bytes | Path, str]]) -> None:
        self._parts.append('<div class="grid">' + "".join(_figure(png, cap) for png, cap in items) + "</div>")

    def render(self) -> str:
        sub = f'<p class="sub">{html.escape(self.subtitle)}</p>' if self.subtitle else ""
        return (
            f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(self.title)}</title>'
            f"<style>{_STYLE}</style></head><body><h1>{html.escape(self.title)}</h1>{sub}"
            + "\n".join(self._parts)
            + "</body></html>\n"
        )

    def save(self, path: Path) -> Path:
        return write_text(Path(path), self.render())


def score_text(value: float | None, digits: int = 3) -> str:
    """A score for a table cell: ``digits`` decimals, "–" for a missing or non-finite value."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{digits}f}"


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def _figure(png: bytes | Path, caption: str) -> str:
    data = Path(png).read_bytes() if isinstance(png, Path) else png
    encoded = base64.b64encode(data).decode("ascii")
    cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{encoded}">{cap}</figure>'
