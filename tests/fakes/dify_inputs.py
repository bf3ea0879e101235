"""A Dify app's user input form and the server's validation of ``inputs`` against it.

Messages are Dify's own (reference dify-typebot.md §A4 "Input-variable validation"), including
its quirks: "must be less than N characters" passes at exactly N, only ``None`` counts as missing,
and keys the form does not declare are dropped without an error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

VariableType = Literal[
    "text-input", "paragraph", "select", "number", "checkbox", "file", "file-list", "json_object"
]

_STRING_TYPES = frozenset({"text-input", "paragraph", "select"})
_FILE_TYPES = frozenset({"file", "file-list"})
_DICT_TYPES = frozenset({"file", "json_object"})


class InputError(ValueError):
    """The server's ``ValueError``: answered as ``400 invalid_param`` with ``str(error)``."""


class InputTypeError(TypeError):
    """Dify raises a bare ``TypeError`` here, which its controller turns into a 500."""


@dataclass(frozen=True)
class InputVariable:
    """One Start-node variable as ``/parameters`` shows it."""

    variable: str
    type: VariableType = "text-input"
    label: str | None = None
    required: bool = False
    max_length: int | None = None
    options: Sequence[str] = ()
    default: Any = None

    def form_entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "type": self.type,
            "variable": self.variable,
            "label": self.label if self.label is not None else self.variable,
            "required": self.required,
        }
        if self.max_length is not None:
            entry["max_length"] = self.max_length
        if self.type == "select":
            entry["options"] = list(self.options)
        if self.default is not None:
            entry["default"] = self.default
        return {self.type: entry}


def prepare_inputs(form: Sequence[InputVariable], raw: Mapping[str, Any]) -> dict[str, Any]:
    """Validate ``raw`` like ``BaseAppGenerator._prepare_user_inputs``; return what the run sees."""
    prepared = {var.variable: _strip_nul(_validate(var, raw.get(var.variable))) for var in form}
    by_name = {var.variable: var for var in form}
    misplaced_dicts = [
        name
        for name, value in prepared.items()
        if isinstance(value, dict) and by_name[name].type not in _DICT_TYPES
    ]
    if misplaced_dicts:
        raise InputError(f"Invalid input type for {misplaced_dicts}")
    misplaced_lists = [
        name
        for name, value in prepared.items()
        if isinstance(value, list)
        and any(isinstance(item, dict) for item in value)
        and by_name[name].type != "file-list"
    ]
    if misplaced_lists:
        raise InputError(f"Invalid input type for {misplaced_lists}")
    return prepared


def _validate(var: InputVariable, value: Any) -> Any:
    if value is None:
        if var.required:
            raise InputError(f"{var.variable} is required in input form")
        value = var.default
        if value is None:
            return None
    if var.type in _FILE_TYPES and not var.required and value == "":
        return None
    if var.type in _STRING_TYPES and not isinstance(value, str):
        raise InputError(f"(type '{var.type}') {var.variable} in input form must be a string")
    if var.type == "number":
        return _number(var, value)
    return _check_by_type(var, value)


def _number(var: InputVariable, value: Any) -> int | float | None:
    if isinstance(value, int | float):
        return value
    if not isinstance(value, str):
        raise InputTypeError(f"expected value type int, float or str, got {type(value)}")
    if not value.strip():
        return None
    try:
        return float(value) if "." in value else int(value)
    except ValueError:
        raise InputError(f"{var.variable} in input form must be a valid number") from None


def _check_by_type(var: InputVariable, value: Any) -> Any:
    name, limit = var.variable, var.max_length
    if var.type == "select" and value not in var.options:
        raise InputError(f"{name} in input form must be one of the following: {list(var.options)}")
    if var.type in ("text-input", "paragraph") and limit and len(value) > limit:
        raise InputError(f"{name} in input form must be less than {limit} characters")
    if var.type == "file" and not isinstance(value, dict):
        raise InputError(f"{name} in input form must be a file")
    if var.type == "file-list":
        if not (isinstance(value, list) and all(isinstance(item, dict) for item in value)):
            raise InputError(f"{name} in input form must be a list of files")
        if limit and len(value) > limit:
            raise InputError(f"{name} in input form must be less than {limit} files")
    if var.type == "checkbox":
        return _checkbox(value)
    if var.type == "json_object" and value and not isinstance(value, dict):
        raise InputError(f"{name} in input form must be a dict")
    return value


def _checkbox(value: Any) -> Any:
    if isinstance(value, str):
        word = value.strip().lower()
        if word in {"true", "1", "yes", "on"}:
            return True
        if word in {"false", "0", "no", "off"}:
            return False
    elif isinstance(value, int | float) and value in (0, 1):
        return value == 1
    return value


def _strip_nul(value: Any) -> Any:
    return value.replace("\x00", "") if isinstance(value, str) else value
