"""One way to serialise, validate and compare every frozen config dataclass of the project.

Every config (generator, segmenter, joint, experiment, ...) derives from :class:`Config`: ``to_dict`` writes JSON-ready
values (enums as strings, tuples as lists, nested configs as dicts), ``from_dict`` reads them back through the
field types (so a saved ``config.json`` rebuilds the same object) and names unknown keys, ``replace`` is
``dataclasses.replace`` that rejects unknown fields with the same one-line error, and ``diff`` lists the fields
two configs disagree on.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from enum import Enum
from pathlib import Path
from typing import Any, Self

from claim.errors import ClaimError, InputError

__all__ = ["Config", "read_run_config"]


class Config:
    """Mixin for frozen dataclass configs (subclasses are ``@dataclass(frozen=True)``).

    Class attribute ``RESUMABLE`` names the fields a resumed run may change (step counts and cadences that do not
    alter the trajectory of the steps already taken).
    """

    RESUMABLE: typing.ClassVar[frozenset[str]] = frozenset()

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _encode(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def field_names(cls) -> set[str]:
        return {f.name for f in dataclasses.fields(cls)}

    @classmethod
    def check_keys(cls, keys: typing.Iterable[str]) -> None:
        unknown = sorted(set(keys) - cls.field_names())
        if unknown:
            raise ValueError(f"unknown {_label(cls)} config keys {unknown} (known: {sorted(cls.field_names())})")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        if not isinstance(data, dict):
            raise ValueError(f"{_label(cls)} config must be a mapping, got {type(data).__name__}")
        cls.check_keys(data)
        hints = typing.get_type_hints(cls)
        return cls(**{k: _decode(hints[k], v, f"{_label(cls)} config key {k!r}") for k, v in data.items()})

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes`` applied (validated again); unknown names are a ``ValueError``."""
        type(self).check_keys(changes)
        return dataclasses.replace(self, **changes)

    def diff(self, other: Config, ignore: typing.Iterable[str] = ()) -> dict[str, tuple[Any, Any]]:
        """``{field: (self's value, other's value)}`` for every field that differs, as serialised."""
        mine, theirs, skip = self.to_dict(), other.to_dict(), set(ignore)
        return {k: (v, theirs.get(k)) for k, v in mine.items() if k not in skip and theirs.get(k) != v}

    def resume_diff(self, other: Config) -> dict[str, tuple[Any, Any]]:
        """Fields that differ and that a resumed run may not change."""
        return self.diff(other, ignore=self.RESUMABLE)


def _label(cls: type) -> str:
    return cls.__name__.removesuffix("Config").lower() or cls.__name__


def _encode(value: Any) -> Any:
    if isinstance(value, Config):
        return value.to_dict()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value


# The JSON values each scalar field type accepts (an integer is a number too).
_SCALARS: dict[type, tuple[type, ...]] = {bool: (bool,), int: (int,), float: (int, float), str: (str,)}


def _type_name(hint: Any) -> str:
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(
        hint, getattr(hint, "__name__", str(hint)))


def _decode(hint: Any, value: Any, where: str) -> Any:
    """Rebuild ``value`` (as written by ``_encode``) for a field annotated ``hint``.

    A value of the wrong JSON type (a hand-edited ``config.json`` given to ``-c``) is a ``ValueError`` naming
    ``where`` here, not an exception deep inside training; ranges are each config's own ``__post_init__``.
    """
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        for option in options:
            if isinstance(option, type) and issubclass(option, Config) and isinstance(value, dict):
                return option.from_dict(value)
        return _decode(options[0], value, where) if len(options) == 1 else value
    if value is None:
        raise ValueError(f"{where}: null where {_type_name(hint)} is expected")
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ValueError(f"{where}: {value!r} is not a list")
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode(args[0], v, where) for v in value)
        if args and len(args) != len(value):
            raise ValueError(f"{where}: {value!r} must have {len(args)} values")
        return tuple(_decode(a, v, where) for a, v in zip(args, value, strict=True)) if args else tuple(value)
    if not isinstance(hint, type):
        return value
    if issubclass(hint, Config):
        if not isinstance(value, dict):
            raise ValueError(f"{where}: {value!r} is not a mapping")
        return hint.from_dict(value)
    if issubclass(hint, Enum):
        try:
            return hint(value)
        except ValueError:
            raise ValueError(f"{where}: {value!r} is not one of {[m.value for m in hint]}") from None
    if hint in _SCALARS:
        # bool is an int in Python but not in a config: true is no step count, and 1 is no switch.
        if isinstance(value, bool) != (hint is bool) or not isinstance(value, _SCALARS[hint]):
            raise ValueError(f"{where}: {value!r} is not {_type_name(hint)}")
        return float(value) if hint is float else value
    return value


def read_run_config(path: Path, command: str) -> dict[str, Any]:
    """The ``config.json`` a ``claim`` command wrote, for ``-c/--config``; one-line errors naming the file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "config file not found")
    try:
        saved = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(path, f"not a readable JSON config ({exc})") from exc
    if not isinstance(saved, dict):
        raise InputError(path, "not a claim config.json (expected a JSON object)")
    written_by = saved.get("command")
    if written_by is not None and written_by != command:
        raise ClaimError(f"{path}: written by 'claim {written_by}', not 'claim {command}'")
    return saved
