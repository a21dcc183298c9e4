"""The API's JSON parser: numbers that name a value and nesting a parser can walk, or a 400.

Python's json module reads 1e400 as infinity, which no id or count can be: DRF's fields and
Django's lookups then fail with an OverflowError, a 500. And it recurses once per level of
nesting, so a body of ten thousand brackets ends in a RecursionError, another 500. Both are
refused here, for every operation, before any field sees the body.
"""

import codecs
import json
import math
from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser, get_encoding
from rest_framework.utils.json import strict_constant

# Well past this API's deepest body (a clinic with its opening hours is three levels), well short
# of the recursion limit.
MAX_DEPTH = 32


class _Unbounded(str):
    """A number beyond any float (1e400), kept as its text until the object holding it names it."""


class _UnboundedIn(Exception):
    def __init__(self, field: str, text: str) -> None:
        self.field, self.text = field, text


class ApiJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: dict | None = None) -> Any:
        encoding = get_encoding(parser_context or {})
        try:
            data = json.load(
                codecs.getreader(encoding)(stream),
                parse_float=_number,
                parse_constant=strict_constant,  # NaN and Infinity are not JSON
                object_pairs_hook=_object,
            )
        except _UnboundedIn as exc:
            raise ParseError({exc.field: [_unbounded(exc.text)]}) from None
        except RecursionError:
            raise ParseError(_too_deep()) from None
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        _check_shape(data)
        return data


def _number(text: str) -> float | _Unbounded:
    value = float(text)
    return value if math.isfinite(value) else _Unbounded(text)


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    for key, value in pairs:
        # An object's own objects have been checked already: only its lists remain to look into.
        stack = [value]
        while stack:
            item = stack.pop()
            if isinstance(item, _Unbounded):
                raise _UnboundedIn(key, item)
            if isinstance(item, list):
                stack.extend(item)
    return dict(pairs)


def _check_shape(data: Any) -> None:
    """Refuses nesting deeper than MAX_DEPTH, and an unbounded number outside any object."""
    stack = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, _Unbounded):
            raise ParseError(_unbounded(value))
        if isinstance(value, dict | list):
            if depth == MAX_DEPTH:
                raise ParseError(_too_deep())
            stack.extend((child, depth + 1) for child in (value.values() if isinstance(value, dict) else value))


def _unbounded(text: str) -> str:
    return f"{text[:40]} is beyond any number this API takes."


def _too_deep() -> str:
    return f"JSON nested deeper than {MAX_DEPTH} levels."
