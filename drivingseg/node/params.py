"""Declared node parameters, validated once at start-up.

Each node class declares its parameters (name, type, default, unit, description, and a
range or a set of choices). :func:`resolve_parameters` checks what a launch file gives
against the declaration: an unknown name, a value of the wrong type or one out of range
raises :class:`ConfigError` naming the launch file, the node and the parameter.

Launch files and ``name:=value`` give unquoted YAML scalars as :class:`Scalar`: a str
parameter takes the text as written (``fp16: off`` is ``'off'``, ``out_dir: 2024`` is
``'2024'``), a bool, int or float parameter what YAML 1.1 reads from it (``true``/``false``,
and also ``yes``/``no``, ``on``/``off``, are booleans). Floats must be finite.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from os import PathLike
from typing import Any

from drivingseg.errors import ConfigError

__all__ = ["Param", "Scalar", "describe_parameters", "resolve_parameters", "where"]

_TYPE_NAMES = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}


def where(node: str, node_type: str, param: str | None = None, origin: str = "") -> str:
    """The message prefix naming a node (type, declaring file) and a parameter in errors."""
    text = f"node {node!r} ({node_type}{', in ' + origin if origin else ''})"
    return f"{text}: parameter {param!r}" if param else text


class Scalar(str):
    """An unquoted YAML scalar read as a bool, number or date: the text as written, and
    ``value``, what YAML 1.1 reads from it (``Scalar('off', False)``)."""

    value: Any

    def __new__(cls, text: str, value: Any) -> Scalar:
        self = super().__new__(cls, text)
        self.value = value
        return self

    def __getnewargs__(self) -> tuple[str, Any]:  # type: ignore[override]
        return str(self), self.value


@dataclass(frozen=True)
class Param:
    """A node parameter: ``type`` is bool, int, float or str; ``unit`` is '' when none."""

    name: str
    type: type
    default: Any
    description: str
    unit: str = ""
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()

    def check(self, value: Any, prefix: str, path: str | PathLike[str] | None) -> Any:
        """Return ``value`` converted to the declared type or raise ConfigError.

        A :class:`Scalar` gives a str parameter its text, any other parameter its value.
        """
        if isinstance(value, Scalar):
            value = str(value) if self.type is str else value.value
        ok: bool
        if self.type is bool:
            ok = isinstance(value, bool)
        elif self.type is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif self.type is float:
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        else:
            ok = isinstance(value, str)
        if not ok:
            expected = _TYPE_NAMES.get(self.type, self.type.__name__)
            message = (
                f"{prefix}: expected {expected}, got {value!r} ({type(value).__name__})"
            )
            raise ConfigError(message, path=path)
        if self.type is float:
            value = _finite(value, prefix, path)
        if self.choices and value not in self.choices:
            message = f"{prefix}: {value!r} is not one of {', '.join(self.choices)}"
            raise ConfigError(message, path=path)
        if self.min is not None and value < self.min:
            message = f"{prefix}: {value!r} is below the minimum {_number(self.min)}{self._unit()}"
            raise ConfigError(message, path=path)
        if self.max is not None and value > self.max:
            message = f"{prefix}: {value!r} is above the maximum {_number(self.max)}{self._unit()}"
            raise ConfigError(message, path=path)
        return value

    def _unit(self) -> str:
        return f" {self.unit}" if self.unit else ""


def _finite(value: int | float, prefix: str, path: str | PathLike[str] | None) -> float:
    """``value`` as a float; NaN, an infinity or an int beyond float raise ConfigError."""
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise ConfigError(f"{prefix}: expected a finite number, got {value!r}", path=path)
    return number


def resolve_parameters(
    declared: Sequence[Param],
    given: Mapping[str, Any],
    *,
    node: str,
    node_type: str,
    path: str | PathLike[str] | None,
    origin: str = "",
) -> dict[str, Any]:
    """Defaults overridden by ``given``, every value checked; errors name file/node/param."""
    by_name = {p.name: p for p in declared}
    for name in given:
        if name not in by_name:
            message = (
                f"{where(node, node_type, str(name), origin)}: unknown parameter; "
                f"valid: {', '.join(sorted(by_name))}"
            )
            raise ConfigError(message, path=path)
    out: dict[str, Any] = {}
    for p in declared:
        value = given.get(p.name, p.default)
        out[p.name] = p.check(value, where(node, node_type, p.name, origin), path)
    return out


def describe_parameters(declared: Sequence[Param]) -> str:
    """One line per parameter: name, type, choices or range, default, unit, description
    (for ``--list-nodes``: what a launch file may set, as checked at start)."""
    lines = []
    for p in declared:
        unit = f" [{p.unit}]" if p.unit else ""
        limits = f" ({'|'.join(p.choices)})" if p.choices else _range(p)
        lines.append(
            f"  {p.name}: {p.type.__name__}{limits} = {p.default!r}{unit}  {p.description}"
        )
    return "\n".join(lines)


def _range(p: Param) -> str:
    """`` (>= 0)``, `` (<= 8)``, `` (1 to 1000)``, or '' without bounds."""
    if p.min is not None and p.max is not None:
        return f" ({_number(p.min)} to {_number(p.max)})"
    if p.min is not None:
        return f" (>= {_number(p.min)})"
    if p.max is not None:
        return f" (<= {_number(p.max)})"
    return ""


def _number(bound: float) -> str:
    """A bound as written: every digit of a whole number (``1048576``, which ``:g``
    showed as ``1.04858e+06``, a limit that is not the one checked), else its repr."""
    if float(bound).is_integer() and abs(bound) < 1e15:
        return str(int(bound))
    return repr(float(bound))
