"""One config object per service: a dataclass whose fields read from flags, then environment
variables, then defaults. The same field metadata documents the README table.

    @dataclass
    class CatalogConfig:
        addr: str = setting("CORRAL_CATALOG_ADDR", "127.0.0.1:50051", "Address to bind")
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def setting(env: str, default: Any, help: str, *, secret: bool = False) -> Any:
    """A config field read from `--<field-name>` or the environment variable `env`."""
    return dataclasses.field(
        default=default, metadata={"env": env, "help": help, "secret": secret}
    )


def _parse_bool(text: str, env: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"{env} must be true or false, got {text!r}")


def _field_type(cls: type, field: dataclasses.Field) -> type:
    hint = typing.get_type_hints(cls)[field.name]
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return hint


def _convert(kind: type, raw: str, env: str) -> Any:
    if kind is bool:
        return _parse_bool(raw, env)
    if kind in (int, float, Path):
        try:
            return kind(raw)
        except ValueError as exc:
            raise ValueError(f"{env}: {exc}") from exc
    return raw


def load(cls: type[T], argv: list[str] | None = None, description: str = "") -> T:
    """Builds `cls` from command-line flags (argv), environment variables and defaults."""
    parser = argparse.ArgumentParser(description=description)
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        env = field.metadata["env"]
        flag = "--" + field.name.replace("_", "-")
        help_text = f"{field.metadata['help']} (env {env}, default {field.default!r})"
        parser.add_argument(flag, dest=field.name, default=None, help=help_text)
    args = parser.parse_args(argv if argv is not None else [])
    values = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        env = field.metadata["env"]
        raw = getattr(args, field.name)
        if raw is None:
            raw = os.environ.get(env)
        if raw is None:
            continue
        try:
            values[field.name] = _convert(_field_type(cls, field), raw, env)
        except ValueError as exc:
            parser.error(str(exc))
    return cls(**values)


def settings_table(configs: dict[str, type]) -> str:
    """A Markdown table of every setting of the named config classes: variable, flag, default,
    which services read it, meaning."""
    rows: dict[str, list[str]] = {}
    readers: dict[str, list[str]] = {}
    for service, cls in configs.items():
        for field in dataclasses.fields(cls):
            env = field.metadata["env"]
            readers.setdefault(env, []).append(service)
            if env not in rows:
                default = "" if field.default in (None, "") else f"`{field.default}`"
                flag = "--" + field.name.replace("_", "-")
                rows[env] = [f"`{env}`", f"`{flag}`", default, field.metadata["help"]]
    lines = ["| variable | flag | default | read by | meaning |", "| --- | --- | --- | --- | --- |"]
    for env, (name, flag, default, meaning) in rows.items():
        lines.append(f"| {name} | {flag} | {default} | {', '.join(readers[env])} | {meaning} |")
    return "\n".join(lines)


def env_names(*classes: type) -> set[str]:
    """Every environment variable the given config classes read."""
    return {f.metadata["env"] for cls in classes for f in dataclasses.fields(cls)}
