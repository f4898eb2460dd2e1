"""Typed configuration from YAML: dataclasses, unknown keys and wrong types rejected by name."""
from __future__ import annotations

import copy
import dataclasses
import math
import re
import reprlib
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import yaml

from trkx.errors import ConfigError  # noqa: F401  (raised here; trkx.config.ConfigError for callers)



class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, but a key given twice in one mapping is an error (PyYAML keeps the
    last silently)."""


def _strict_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict:
    loader.flatten_mapping(node)
    seen: dict = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"key {key!r} given twice (first on line {seen[key]})",
                                                    key_node.start_mark)
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _strict_mapping)
# YAML 1.2 floats: PyYAML (YAML 1.1) reads 1e-3 and 1e400 as strings, so ``lr: 1e-3`` would be refused
_StrictLoader.add_implicit_resolver("tag:yaml.org,2002:float",
                                    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
                                    list("-+0123456789"))

_short = reprlib.Repr()
_short.maxstring, _short.maxother, _short.maxlist, _short.maxdict, _short.maxlevel = 60, 60, 6, 6, 3


def short_repr(value: Any) -> str:
    """A value's repr cut to one short line (an alias bomb's repr would run to hundreds of MB)."""
    return _short.repr(value)


def load_yaml(path: str | Path) -> dict:
    """Read a YAML mapping, with one clear error for a missing file, bad syntax, a duplicate key,
    too deep a nesting or a non-mapping."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        with open(path) as f:
            data = yaml.load(f, Loader=_StrictLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ConfigError(f"{path}: malformed YAML{where}: {getattr(err, 'problem', err)}") from None
    except RecursionError:
        raise ConfigError(f"{path}: malformed YAML: nested too deeply for a config") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not a text file ({err.reason} at byte {err.start})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level, got {type(data).__name__}")
    return data


def _type_name(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, where: str, key: str) -> Any:
    """Check ``value`` against annotation ``tp``; ints are accepted for floats."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where, key)
            except ConfigError:
                pass   # try the next type of the union
        raise ConfigError(f"{where}: key '{key}': expected {' or '.join(_type_name(a) for a in args)}, "
                          f"got {type(value).__name__} {short_repr(value)}")
    if origin is Literal:
        if value not in get_args(tp):
            raise ConfigError(f"{where}: key '{key}': expected one of {_type_name(tp)}, got {short_repr(value)}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: key '{key}': expected a list, got {type(value).__name__} {short_repr(value)}")
        (item_tp, *_) = get_args(tp) or (Any,)
        return [_coerce(v, item_tp, where, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: key '{key}': expected a mapping, got {type(value).__name__}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: key '{key}': expected a mapping, got {type(value).__name__}")
        return parse_config(tp, value, where, prefix=f"{key}.")
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: key '{key}': expected bool, got {type(value).__name__} {short_repr(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: key '{key}': expected int, got {type(value).__name__} {short_repr(value)}")
        if not -2**63 <= value < 2**63:
            raise ConfigError(f"{where}: key '{key}': {short_repr(value)} does not fit in a 64-bit integer")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: key '{key}': expected float, got {type(value).__name__} {short_repr(value)}")
        try:
            number = float(value)
        except OverflowError:
            raise ConfigError(f"{where}: key '{key}': {short_repr(value)} is too large for a float") from None
        if math.isnan(number):
            raise ConfigError(f"{where}: key '{key}': NaN is not allowed")
        if not math.isfinite(number):
            raise ConfigError(f"{where}: key '{key}': {short_repr(value)} is not a finite number")
        return number
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: key '{key}': expected str, got {type(value).__name__} {short_repr(value)}")
        return value
    if tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: key '{key}': expected a mapping, got {type(value).__name__}")
        return value
    return value


T = typing.TypeVar("T")


def parse_config(cls: type[T], data: dict, where: str, prefix: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; ``where`` (usually the file) prefixes every error."""
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key '{prefix}{unknown[0]}' "
                          f"(allowed: {', '.join(sorted(fields))})")
    kwargs = {}
    for name, field in fields.items():
        if name in data:
            kwargs[name] = _coerce(data[name], hints[name], where, prefix + name)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{where}: missing required key '{prefix}{name}'")
    obj = cls(**kwargs)
    check = getattr(obj, "validate", None)
    if check is not None:
        try:
            check()
        except ValueError as err:
            at = f"{prefix.rstrip('.')}: " if prefix else ""
            raise ConfigError(f"{where}: {at}{err}") from None
    return obj


def config_to_dict(cfg: Any) -> dict:
    """Plain dict of a config dataclass (for fingerprints and logs).  A field marked
    ``metadata={"omit_default": True}`` is left out while it holds its default, so that adding
    such a key or section to a config class leaves the fingerprints of existing configs unchanged."""
    out = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if f.metadata.get("omit_default"):
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            if value == default:
                continue
        out[f.name] = _plain(value)
    return out


def _plain(value: Any) -> Any:
    """``dataclasses.asdict``'s conversion, with nested configs through ``config_to_dict``."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return config_to_dict(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return copy.deepcopy(value)
