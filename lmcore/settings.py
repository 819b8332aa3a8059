"""Settings that carry their own documentation: each config dataclass field says what it does, its unit and its
allowed range once, as field metadata, and validation, the command line (`lmcore settings`), the app's form and
docs/configuration.md all read it from there.

    @dataclass
    class OptimConfig:
        lr: float = setting(1e-3, "Step size. ...", above=0, at_most=100)
"""
from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import tomli_w

from .errors import ConfigError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")


def setting(default: Any = dataclasses.MISSING, help: str = "", *, factory: Callable[[], Any] | None = None,
            unit: str = "", at_least: float | None = None, above: float | None = None,
            at_most: float | None = None, below: float | None = None, choices: tuple[str, ...] = (),
            default_text: str = "") -> Any:
    """A dataclass field and its documentation: `help` (what it does, its sensible values), `unit`, the allowed
    range (at_least or above, at_most or below) or `choices`, which check_settings enforces, and `default_text`
    where the default is not a fixed value ("train.context"). `factory` makes a mutable default, as
    default_factory does."""
    metadata = {"help": help, "unit": unit, "at_least": at_least, "above": above, "at_most": at_most,
                "below": below, "choices": tuple(choices), "default_text": default_text}
    metadata = {key: value for key, value in metadata.items() if value is not None and value != "" and value != ()}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def from_table(cls: type[T], table: Any, prefix: str, source: str = "config") -> T:
    """An instance of dataclass `cls` from a parsed TOML table (section `prefix`): missing settings take their
    defaults, a whole number stands for a float; an unknown name or a value of the wrong type is a ConfigError
    naming it."""
    expect_table(prefix, table, source)
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]
    for name, value in table.items():
        key = f"{prefix}.{name}"
        if name not in known:
            raise ConfigError(f"{source}: unknown setting {key}; known: {', '.join(known)}.", field=key)
        if not same_kind(hints[name], value):
            raise ConfigError(f"{source}: {key} = {value!r} should be {kind_name(hints[name])}.", field=key)
    return cls(**{name: float(value) if hints[name] is float else value for name, value in table.items()})


def expect_table(key: str, value: Any, source: str) -> None:
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: [{key}] must be a table of settings, not {value!r}.", field=key)


def check_settings(obj: Any, prefix: str, skip: tuple[str, ...] = ()) -> None:
    """ConfigError, naming the field, for the first field of dataclass `obj` whose value has the wrong type, or (for
    fields not in `skip`) is not one of its choices or lies outside its range. `prefix` is the section ("optim")."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        key, value = f"{prefix}.{f.name}", getattr(obj, f.name)
        if not same_kind(hints[f.name], value):
            raise ConfigError(f"{key} = {value!r} must be {kind_name(hints[f.name])}.", field=key)
        if f.name not in skip:
            check_value(key, value, f.metadata)


def check_value(key: str, value: Any, meta: Mapping[str, Any]) -> None:
    """ConfigError unless `value` is one of the field's choices and within its range (lists are left to the
    checks of their own)."""
    choices = meta.get("choices")
    if choices and value not in choices:
        raise ConfigError(f"{key} = {value!r} is not one of {', '.join(choices)}; pick one of them.", field=key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    # Written as what is allowed, so that nan (which compares False with everything) is refused too.
    high_enough = ((meta.get("above") is None or value > meta["above"])
                   and (meta.get("at_least") is None or value >= meta["at_least"]))
    low_enough = ((meta.get("below") is None or value < meta["below"])
                  and (meta.get("at_most") is None or value <= meta["at_most"]))
    if not high_enough:
        raise ConfigError(f"{key} = {number_text(value, exact=True)} must be {range_text(meta)}.", field=key)
    if not low_enough:
        size = "large" if isinstance(value, int) else "high"
        raise ConfigError(f"{key} = {number_text(value, exact=True)} is too {size}: it must be {range_text(meta)}.",
                          field=key)


def range_text(meta: Mapping[str, Any]) -> str:
    """The allowed values in words: "positive", "at least 1", "between 0 and 1 (exclusive)", "" for any."""
    if meta.get("choices"):
        return "one of " + ", ".join(meta["choices"])
    low, high = meta.get("above", meta.get("at_least")), meta.get("below", meta.get("at_most"))
    open_low, open_high = "above" in meta, "below" in meta
    if low is not None and high is not None and open_low == open_high:
        return f"between {number_text(low)} and {number_text(high)}" + (" (exclusive)" if open_low else "")
    lower = None if low is None else "positive" if open_low and low == 0 else (
        f"{'above' if open_low else 'at least'} {number_text(low)}")
    upper = None if high is None else f"{'below' if open_high else 'at most'} {number_text(high)}"
    return " and ".join(words for words in (lower, upper) if words)


def number_text(x: float, exact: bool = False) -> str:
    """1,048,576 for a whole number; a float as Python writes it (`exact`, for a value) or shortened (a bound)."""
    if isinstance(x, int):
        return f"{x:,}"
    return str(x) if exact else f"{x:g}"


def default_text(f: dataclasses.Field) -> str:
    """The field's default as it would be written in TOML, or what it stands for ("train.context")."""
    if "default_text" in f.metadata:
        return f.metadata["default_text"]
    return toml_value(f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default)


def toml_value(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(x) for x in value) + "]"
    return tomli_w.dumps({"v": value}).partition("=")[2].strip()


def same_kind(hint: Any, value: Any) -> bool:
    """Whether `value` (as TOML parsed it) fits the type hint: a whole number is a number, true is not."""
    if typing.get_origin(hint) is list:
        (element,) = typing.get_args(hint)
        if isinstance(value, str):  # a single path may be written as a plain string
            return element is str
        return isinstance(value, list) and all(same_kind(element, x) for x in value)
    if isinstance(value, bool):
        return hint is bool
    if hint is float:
        return isinstance(value, (int, float))
    return isinstance(value, hint)


def kind_name(hint: Any) -> str:
    if typing.get_origin(hint) is list:
        element = typing.get_args(hint)[0]
        return {str: "a list of paths", int: "a list of integers"}.get(element, "a list of numbers")
    return {bool: "true or false", float: "a number", int: "a whole number", str: "text"}[hint]
