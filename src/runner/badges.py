"""Status badges (``/badge/NAME.svg``): SVG in the shape of shields.io's flat badges.

Text widths are measured, not estimated: with the width table of 11px
Verdana that shields.io's badge-maker uses (the npm package anafanafo,
vendored in ``runner/_vendor/anafanafo`` with its MIT licence), and laid out
as badge-maker does: each text's width rounded down, then up to an odd number
(pixel-grid alignment), and 5 px of padding on both sides of each half. Each
``<text>`` carries its measured ``textLength``, so a viewer without Verdana
(its fallback is DejaVu Sans, then any sans-serif) fits the text into the
same box instead of letting it touch or cross the edge.
"""

from __future__ import annotations

import hashlib
import json
from bisect import bisect_right
from functools import cache
from html import escape
from importlib.resources import files

__all__ = ["HORIZONTAL_PADDING", "badge_svg", "text_width"]

#: Padding (px) on each side of each half's text (badge-maker's ``horizPadding``).
HORIZONTAL_PADDING = 5

_FONT = "Verdana,Geneva,DejaVu Sans,sans-serif"


@cache
def _table() -> tuple[list[int], list[tuple[int, int, float]]]:
    """The width table: the first code point of each range, and the ranges."""
    raw = files("runner").joinpath("_vendor/anafanafo/verdana-11px-normal.json").read_bytes()
    ranges = [(int(lo), int(hi), float(width)) for lo, hi, width in json.loads(raw)]
    return [lo for lo, _, _ in ranges], ranges


def _char_width(code: int) -> float | None:
    if code <= 31 or code == 127:  # control characters take no room
        return 0.0
    starts, ranges = _table()
    index = bisect_right(starts, code) - 1
    if index >= 0:
        lo, hi, width = ranges[index]
        if lo <= code <= hi:
            return width
    return None


def text_width(text: str) -> float:
    """The width (px) of ``text`` in 11px Verdana, as shields.io measures it: a
    character outside the table counts as wide as ``m``."""
    em = _char_width(ord("m"))
    assert em is not None
    total = 0.0
    for char in text:
        width = _char_width(ord(char))
        total += em if width is None else width
    return total


def _box_width(text: str) -> int:
    """The width given to ``text``: rounded down, then up to odd (badge-maker's
    ``preferredWidthOf``)."""
    width = int(text_width(text))
    return width if width % 2 else width + 1


def badge_svg(label: str, message: str, color: str) -> str:
    """A badge reading ``label`` (on grey) and ``message`` (on ``color``).

    Both texts are escaped: a job name is never markup.
    """
    label_text, message_text = _box_width(label), _box_width(message)
    left = label_text + 2 * HORIZONTAL_PADDING
    right = message_text + 2 * HORIZONTAL_PADDING
    width = left + right
    # Ids of its own: badges inlined in one page must not clip to each other's size.
    uid = hashlib.blake2s(f"{label}\0{message}\0{color}".encode(), digest_size=4).hexdigest()
    label, message = escape(label), escape(message)
    # Text is drawn at 10x and scaled down (as badge-maker does) so that its
    # position and length keep a tenth of a pixel.
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="20" '
        f'role="img" aria-label="{label}: {message}"><title>{label}: {message}</title>'
        f'<linearGradient id="s-{uid}" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" '
        'stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient>'
        f'<clipPath id="r-{uid}"><rect width="{width}" height="20" rx="3" fill="#fff"/></clipPath>'
        f'<g clip-path="url(#r-{uid})"><rect class="label" width="{left}" height="20" '
        f'fill="#555"/><rect class="message" x="{left}" width="{right}" height="20" '
        f'fill="{color}"/><rect width="{width}" height="20" fill="url(#s-{uid})"/></g>'
        f'<g fill="#fff" text-anchor="middle" font-family="{_FONT}" '
        'text-rendering="geometricPrecision" font-size="110">'
        f'<text aria-hidden="true" x="{left * 5}" y="150" fill="#010101" fill-opacity=".3" '
        f'transform="scale(.1)" textLength="{label_text * 10}">{label}</text>'
        f'<text class="label" x="{left * 5}" y="140" transform="scale(.1)" '
        f'textLength="{label_text * 10}">{label}</text>'
        f'<text aria-hidden="true" x="{(left * 2 + right) * 5}" y="150" fill="#010101" '
        f'fill-opacity=".3" transform="scale(.1)" textLength="{message_text * 10}">'
        f"{message}</text>"
        f'<text class="message" x="{(left * 2 + right) * 5}" y="140" transform="scale(.1)" '
        f'textLength="{message_text * 10}">{message}</text></g></svg>'
    )
