"""Plots for the status page as inline SVG, made on the server: no
JavaScript, no external assets. Pure functions of the numbers; every
value drawn is a number we computed, and the only text is what the
caller passes, escaped here."""

from __future__ import annotations

import html
from collections.abc import Sequence

Rows = Sequence[Sequence[int] | None]

_LEFT = 46
_BOTTOM = 16
_TOP = 6


def stacked_bars(
    rows: Rows,
    columns: Sequence[tuple[int, str]],
    labels: tuple[str, str],
    unit: str = "",
    width: int = 560,
    height: int = 150,
) -> str:
    """One bar per row, its ``columns`` (index, colour) stacked; an empty
    row (None) draws nothing. ``labels``: the first and last bucket's
    names, under the axis."""
    count = len(rows) or 1
    plot_width = width - _LEFT - 4
    plot_height = height - _BOTTOM - _TOP
    peak = max(
        (sum(row[i] for i, _ in columns) for row in rows if row is not None),
        default=0,
    )
    scale = plot_height / peak if peak else 0.0
    step = plot_width / count
    bar = max(step - 1, 1)
    parts = [_frame(width, height, peak, unit, labels)]
    bottom = _TOP + plot_height
    for position, row in enumerate(rows):
        if row is None:
            continue
        x = _LEFT + position * step
        y: float = bottom
        for index, colour in columns:
            value = row[index]
            if value:
                h = value * scale
                y -= h
                parts.append(
                    f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" '
                    f'height="{h:.1f}" fill="{colour}"/>'
                )
    parts.append("</svg>")
    return "".join(parts)


def lines(
    rows: Rows,
    columns: Sequence[tuple[int, str]],
    labels: tuple[str, str],
    unit: str = "",
    width: int = 560,
    height: int = 150,
) -> str:
    """One polyline per column (index, colour) across the rows (an empty
    row counts as 0), with a dot on each bucket that saw anything."""
    count = len(rows)
    plot_width = width - _LEFT - 4
    plot_height = height - _BOTTOM - _TOP
    peak = max(
        (row[i] for row in rows if row is not None for i, _ in columns), default=0
    )
    scale = plot_height / peak if peak else 0.0
    step = plot_width / max(count - 1, 1)
    bottom = _TOP + plot_height
    parts = [_frame(width, height, peak, unit, labels)]
    for index, colour in columns:
        points = []
        dots = []
        for position, row in enumerate(rows):
            value = row[index] if row is not None else 0
            x = _LEFT + position * step
            y = bottom - value * scale
            points.append(f"{x:.1f},{y:.1f}")
            if value:
                dots.append(
                    f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2" fill="{colour}"/>'
                )
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" '
            f'points="{" ".join(points)}"/>'
        )
        parts.extend(dots)
    parts.append("</svg>")
    return "".join(parts)


def sparkline(
    values: Sequence[int], colour: str, width: int = 120, height: int = 22
) -> str:
    """A small line of ``values`` without axes (a table cell's plot), in
    whole pixels: a page may hold hundreds of them."""
    peak = max(values, default=0)
    scale = (height - 2) / peak if peak else 0.0
    step = width / max(len(values) - 1, 1)
    bottom = height - 1
    points = " ".join(
        [
            str(int(i * step)) + "," + str(bottom - int(v * scale))
            for i, v in enumerate(values)
        ]
    )
    return (
        f'<svg class="spark" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}"><polyline fill="none" stroke="{colour}" '
        f'stroke-width="1.2" points="{points}"/></svg>'
    )


def _frame(
    width: int, height: int, peak: float, unit: str, labels: tuple[str, str]
) -> str:
    bottom = height - _BOTTOM
    first, last = (html.escape(label) for label in labels)
    top = f"{_short(peak)}{html.escape(unit)}"
    return (
        f'<svg class="plot" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img">'
        f'<line x1="{_LEFT}" y1="{_TOP}" x2="{_LEFT}" y2="{bottom}" stroke="#999"/>'
        f'<line x1="{_LEFT}" y1="{bottom}" x2="{width - 4}" y2="{bottom}" '
        f'stroke="#999"/>'
        f'<text x="{_LEFT - 4}" y="{_TOP + 9}" text-anchor="end">{top}</text>'
        f'<text x="{_LEFT - 4}" y="{bottom}" text-anchor="end">0</text>'
        f'<text x="{_LEFT}" y="{height - 3}">{first}</text>'
        f'<text x="{width - 4}" y="{height - 3}" text-anchor="end">{last}</text>'
    )


def _short(value: float) -> str:
    """A number in a few characters: 950, 1.2k, 34M, 5.6G."""
    for unit in ("", "k", "M", "G", "T"):
        if value < 1000 or unit == "T":
            text = f"{value:.1f}" if value < 10 and unit else f"{value:.0f}"
            return text + unit
        value /= 1000
    return str(value)
