"""The usage chart of the tenant page: inline SVG drawn on the server, no script, no CDN.

Two bars a day (customer messages in, replies out) on a shared scale with four gridlines; each
bar carries a ``<title>``, so hovering shows the exact count, and the chart has a text summary
for screen readers.
"""

from __future__ import annotations

import math
from datetime import date

from markupsafe import Markup, escape

from billing import DailyUsage, UsageTotals

WIDTH, HEIGHT = 960, 240
LEFT, RIGHT, TOP, BOTTOM = 48, 8, 12, 28
SERIES = (("messages_in", "messages in"), ("replies_out", "replies out"))


def nice_ceiling(value: int) -> int:
    """The smallest 4 gridlines of 1, 2, 2.5 or 5 times a power of ten reaching ``value``."""
    if value <= 4:
        return 4
    step = value / 4
    magnitude = 10 ** math.floor(math.log10(step))
    for factor in (1, 2, 2.5, 5, 10):
        tick = factor * magnitude
        if tick >= step and float(tick).is_integer():  # whole numbers on the axis
            return int(tick * 4)
    return value  # unreachable: factor 10 always covers step


def usage_chart(days: list[date], daily: list[DailyUsage]) -> Markup:
    by_day = {item.day: item.usage for item in daily}
    values = [by_day.get(day, UsageTotals()) for day in days]
    top = nice_ceiling(max([0, *(max(v.messages_in, v.replies_out) for v in values)]))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(days), 1)
    bar = max(min(slot * 0.36, 16.0), 1.0)
    parts = [
        f'<svg class="usage-chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img"'
        f' aria-labelledby="usage-chart-title" preserveAspectRatio="xMidYMid meet">',
        f'<title id="usage-chart-title">{escape(_summary(days, values))}</title>',
    ]
    for line in range(5):
        y = TOP + plot_h - plot_h * line / 4
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
        )
        parts.append(
            f'<text class="axis" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{_short(top * line // 4)}</text>"
        )
    label_every = max(1, math.ceil(len(days) / 10))
    for index, (day, usage) in enumerate(zip(days, values, strict=True)):
        x = LEFT + slot * index + slot / 2
        for offset, (name, label) in zip((-bar, 0.0), SERIES, strict=True):
            count = int(getattr(usage, name))
            height = plot_h * count / top
            parts.append(
                f'<rect class="bar {name}" x="{x + offset:.1f}" y="{TOP + plot_h - height:.1f}"'
                f' width="{bar:.1f}" height="{height:.1f}">'
                f"<title>{day.isoformat()}: {count} {label}</title></rect>"
            )
        if index % label_every == 0:
            parts.append(
                f'<text class="axis" x="{x:.1f}" y="{HEIGHT - 8}" text-anchor="middle">'
                f"{day:%d %b}</text>"
            )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704  (every value above is a number or escaped)


def _summary(days: list[date], values: list[UsageTotals]) -> str:
    if not days:
        return "No days chosen"
    messages = sum(v.messages_in for v in values)
    replies = sum(v.replies_out for v in values)
    return (
        f"Usage from {days[0].isoformat()} to {days[-1].isoformat()}:"
        f" {messages} messages in, {replies} replies out"
    )


def _short(value: int) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:g}M"
    if value >= 1_000:
        return f"{value / 1_000:g}k"
    return str(value)
