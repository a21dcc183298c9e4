"""The README's table of 409 codes is the API's own: every code in RULES, with its rule and text."""

import re
from pathlib import Path

from sessions.calendar import RULES

README = Path(__file__).resolve().parents[2] / "README.md"
HEADING = "### Booking rules and their 409 codes"
ROW = re.compile(r"^\| `(?P<code>[a-z_]+)` \| (?P<rule>\d+) \| (?P<text>.+) \|$")


def readme_rules() -> list[tuple[str, int, str]]:
    section = README.read_text().split(HEADING, 1)[1].split("\n#", 1)[0]
    return [
        (found["code"], int(found["rule"]), found["text"])
        for line in section.splitlines()
        if (found := ROW.match(line))
    ]


def rules_table() -> str:
    return "\n".join(f"| `{code}` | {rule} | {text} |" for code, (rule, text) in RULES.items())


def test_the_readme_lists_every_409_code_with_its_rule_and_text():
    expected = [(code, rule, text) for code, (rule, text) in RULES.items()]

    assert readme_rules() == expected, f"Replace the rows under '{HEADING}' in README.md with:\n{rules_table()}"
