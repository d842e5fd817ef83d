"""Bar charts drawn on the server as SVG geometry (no script, no third party): the template
turns these rectangles into <rect> elements, and a table beside the chart gives the figures."""

from __future__ import annotations

from dataclasses import dataclass

WIDTH = 640
LABEL_WIDTH = 190
BAR_AREA = WIDTH - LABEL_WIDTH - 50
ROW_HEIGHT = 36
TOP = 8


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    kind: str  # a CSS class: yes, maybe, no, none, came
    count: int


@dataclass(frozen=True)
class Row:
    label: str
    label_y: float
    bars: list[Bar]
    total_x: float
    total: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    rows: list[Row]


def stacked(rows: list[tuple[str, list[tuple[str, int]], list[tuple[str, int]]]]) -> Chart:
    """One row per item: a stacked bar of its first parts, a thinner bar of its second ones
    below it, on one scale (the largest stacked total)."""
    largest = max([sum(n for _, n in first) for _, first, _ in rows] + [1])
    scale = BAR_AREA / largest
    drawn = []
    for index, (label, first, second) in enumerate(rows):
        top = TOP + index * ROW_HEIGHT
        bars = []
        for parts, y, height in ((first, top, 16), (second, top + 18, 9)):
            x = float(LABEL_WIDTH)
            for kind, count in parts:
                if count:
                    bars.append(Bar(x, y, count * scale, height, kind, count))
                    x += count * scale
        total = sum(n for _, n in first)
        drawn.append(
            Row(
                label=label,
                label_y=top + 14,
                bars=bars,
                total_x=LABEL_WIDTH + total * scale + 6,
                total=str(total),
            )
        )
    return Chart(WIDTH, TOP * 2 + ROW_HEIGHT * max(len(rows), 1), drawn)
