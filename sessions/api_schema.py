"""The API's refusals, added to every operation of the OpenAPI schema.

drf-spectacular documents the answer an operation gives when it works, and whatever
`extend_schema` names (409 for a booking rule). DRF itself answers 400 for bad input, 401 or 403
without a token or the permission, and 404 for an unknown id: an integrator must find those in
the schema as well, or a generated client treats them as surprises.
"""

from collections.abc import Iterator
from typing import Any

_DETAIL = {
    "type": "object",
    "properties": {"detail": {"type": "string"}},
    "required": ["detail"],
}
_FIELD_ERRORS = {
    "type": "object",
    "additionalProperties": {},
    "description": "Each key names a field at fault (`non_field_errors` for the whole input, `detail` for a "
    "body that cannot be parsed); its value says what is wrong.",
}


def document_error_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: document 400/401/403/404 where DRF can answer them."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("ErrorDetail", _DETAIL)
    schemas.setdefault("FieldErrors", _FIELD_ERRORS)
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            responses = operation["responses"]
            for code, description, component in _refusals(operation):
                responses.setdefault(code, _response(description, component))
            operation["responses"] = dict(sorted(responses.items()))
    return result


def _refusals(operation: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    parameters = operation.get("parameters", [])
    if "requestBody" in operation or any(p["in"] == "query" for p in parameters):
        yield "400", "Bad input: the fields at fault, each with what is wrong.", "FieldErrors"
    if any(requirement for requirement in operation.get("security", [])):
        yield "401", "No valid token.", "ErrorDetail"
        yield "403", "The user's role does not allow this.", "ErrorDetail"
    if any(p["in"] == "path" for p in parameters):
        yield "404", "No such id.", "ErrorDetail"


def _response(description: str, component: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{component}"}}},
    }
