"""Every text colour the stylesheets set on a background of their own reads at WCAG AA (4.5:1).

axe-core sees only the badges a page shows at the hour the browser test runs (an "Unconfirmed,
within 24 h" badge shows on the demo's board only at night), so the palette itself is checked
here, every rule of it, at any hour."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STYLESHEETS = {
    "staff": (ROOT / "templates" / "staff" / "style.css").read_text(),
    "patient": re.search(r"<style>(.*?)</style>", (ROOT / "templates" / "patient" / "base.html").read_text(), re.S)[1],
}
COLOUR = r"var\(--[\w-]+\)|#[0-9a-fA-F]{6}\b|#[0-9a-fA-F]{3}\b"


def rgb(value: str, variables: dict[str, str]) -> tuple[float, ...]:
    if value.startswith("var("):
        value = variables[value[6:-1]]
    digits = value.lstrip("#")
    if len(digits) == 3:
        digits = "".join(d * 2 for d in digits)
    return tuple(int(digits[i : i + 2], 16) / 255 for i in (0, 2, 4))


def luminance(colour: tuple[float, ...]) -> float:
    red, green, blue = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in colour)
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def contrast(one: tuple[float, ...], other: tuple[float, ...]) -> float:
    light, dark = sorted((luminance(one), luminance(other)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def pairs(css: str) -> list[tuple[str, str, str]]:
    """(selector, colour, background) for each rule that sets both."""
    variables = dict(re.findall(r"--([\w-]+):\s*(#[0-9a-fA-F]{3,6})", css))
    found = []
    for selector, body in re.findall(r"([^{}]+)\{([^{}]*)\}", css):
        background = re.search(rf"background(?:-color)?:\s*({COLOUR})\s*;", body)
        colour = re.search(rf"(?<![-\w])color:\s*({COLOUR})", body)
        if background and colour:
            found.append((" ".join(selector.split()), *(rgb(m[1], variables) for m in (colour, background))))
    return found


@pytest.mark.parametrize("sheet", STYLESHEETS)
def test_every_coloured_rule_reads_at_aa(sheet):
    rules = pairs(STYLESHEETS[sheet])
    assert len(rules) >= 8, "the stylesheet's coloured rules were not found"
    low = [f"{selector}: {contrast(fg, bg):.2f}:1" for selector, fg, bg in rules if contrast(fg, bg) < 4.5]
    assert not low, f"below 4.5:1 in the {sheet} stylesheet: {low}"


def test_the_check_finds_a_pale_badge():
    css = ":root { --warn: #a86410; --warn-soft: #fdf3e2; }\n"
    css += ".badge-due { background: var(--warn-soft); color: var(--warn); }"
    ((_, fg, bg),) = pairs(css)
    assert 4.2 < contrast(fg, bg) < 4.5
