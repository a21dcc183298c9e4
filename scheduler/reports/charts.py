"""Charts for the reports page, drawn on the server as inline SVG: no script, no CDN, and the
page prints and reads the same with JavaScript off. Every chart sits beside the table of its
numbers, so the SVG is a picture (role="img" with a title and a one-line summary), not the record.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import count

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 16, 40
_ids = count(1)


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]  # fractions (0.25 is 25%), None where there is nothing to count
    css: str  # the class that colours its bars (staff/style.css)


@dataclass(frozen=True)
class Yardstick:
    value: float
    label: str


def columns(
    *, title: str, labels: Sequence[str], series: Sequence[Series], yardstick: Yardstick | None = None
) -> SafeString:
    """Columns of percentages per label, one bar per series side by side, with a dashed line
    where the yardstick (an industry benchmark) lies."""
    top = max([v for s in series for v in s.values if v is not None] + [yardstick.value if yardstick else 0, 0.01])
    scale = _nice_top(top)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    group = plot_w / max(len(labels), 1)
    bar = min(28.0, group * 0.8 / max(len(series), 1))
    parts = [_grid(scale, plot_w, plot_h)]
    for index, label in enumerate(labels):
        x0 = LEFT + index * group + (group - bar * len(series)) / 2
        for offset, one in enumerate(series):
            value = one.values[index]
            if value is None:
                continue
            height = plot_h * value / scale
            parts.append(
                _html(
                    '<rect class="{}" x="{}" y="{}" width="{}" height="{}"><title>{}: {} {}%</title></rect>',
                    one.css,
                    x0 + offset * bar,
                    TOP + plot_h - height,
                    bar - 2,
                    height,
                    label,
                    one.name,
                    value * 100,
                )  # fmt: skip
            )
        parts.append(
            _html(
                '<text class="axis" x="{}" y="{}" text-anchor="middle">{}</text>',
                LEFT + index * group + group / 2,
                HEIGHT - BOTTOM + 16,
                label,
            )  # fmt: skip
        )
    if yardstick is not None:
        y = TOP + plot_h * (1 - yardstick.value / scale)
        parts.append(
            _html(
                '<line class="yardstick" x1="{}" x2="{}" y1="{}" y2="{}"/>'
                '<text class="axis" x="{}" y="{}" text-anchor="end">{}</text>',
                LEFT,
                WIDTH - RIGHT,
                y,
                y,
                WIDTH - RIGHT,
                y - 4,
                yardstick.label,
            )  # fmt: skip
        )
    parts.append(_legend(series))
    return _svg(title, parts)


def bars(*, title: str, rows: Sequence[tuple[str, int]], css: str = "bar-a") -> SafeString:
    """Horizontal bars of counts (the reminder funnel), longest first as given."""
    height = TOP + 26 * len(rows) + 8
    most = max([n for _, n in rows] + [1])
    label_w, plot_w = 150, WIDTH - 150 - 70
    parts = []
    for index, (label, n) in enumerate(rows):
        y = TOP + index * 26
        parts.append(
            _html(
                '<text class="axis" x="{}" y="{}" text-anchor="end">{}</text>'
                '<rect class="{}" x="{}" y="{}" width="{}" height="18"><title>{}: {}</title></rect>'
                '<text class="axis" x="{}" y="{}">{}</text>',
                label_w - 8,
                y + 13,
                label,
                css,
                label_w,
                y,
                plot_w * n / most,
                label,
                n,
                label_w + plot_w * n / most + 6,
                y + 13,
                n,
            )  # fmt: skip
        )
    return _svg(title, parts, height=height)


def _svg(title: str, parts: list[SafeString], *, height: int = HEIGHT) -> SafeString:
    ident = f"chart-{next(_ids)}"
    return format_html(
        '<svg class="chart" viewBox="0 0 {} {}" role="img" aria-labelledby="{}" focusable="false">'
        '<title id="{}">{}</title>{}</svg>',
        WIDTH, height, ident, ident, title, mark_safe("".join(parts)),
    )  # fmt: skip


def _grid(scale: float, plot_w: float, plot_h: float) -> SafeString:
    lines = []
    for n in range(5):
        step = scale * n / 4
        y = TOP + plot_h * (1 - step / scale)
        lines.append(
            _html(
                '<line class="grid" x1="{}" x2="{}" y1="{}" y2="{}"/>'
                '<text class="axis" x="{}" y="{}" text-anchor="end">{}%</text>',
                LEFT,
                LEFT + plot_w,
                y,
                y,
                LEFT - 6,
                y + 4,
                round(step * 100),
            )  # fmt: skip
        )
    return mark_safe("".join(lines))


def _legend(series: Sequence[Series]) -> SafeString:
    if len(series) < 2:
        return mark_safe("")
    return format_html_join(
        "",
        '<rect class="{}" x="{}" y="{}" width="10" height="10"/><text class="axis" x="{}" y="{}">{}</text>',
        ((s.css, LEFT + i * 130, HEIGHT - 14, LEFT + i * 130 + 14, HEIGHT - 5, s.name) for i, s in enumerate(series)),
    )


def _html(template: str, *args: object) -> SafeString:
    """format_html with coordinates written to one decimal: format_html escapes its arguments
    into strings before formatting, so the numbers are written here first."""
    return format_html(template, *(f"{arg:.1f}" if isinstance(arg, float) else arg for arg in args))


def _nice_top(value: float) -> float:
    """The axis' top: the smallest of a few tops whose quarters are whole percents, at or above
    `value`."""
    for top in (0.08, 0.12, 0.2, 0.4, 0.6, 0.8, 1.0):
        if value <= top:
            return top
    return value
