"""The dev stack's configuration as a TOML file, for the commands a user runs beside it.

Why: ``bme-oracle dev`` picks free ports, fresh keys and new contract addresses on every
start. Writing what it chose to ``<workdir>/oracle.toml`` lets a second terminal run
``bme-oracle market ... --config var/dev/oracle.toml`` or ``bme-oracle dev advance``
against the running stack with nothing copied by hand. The file holds no secret (the
loader refuses secrets in files anyway): passwords stay in the files named by
``*_file`` keys. Only keys that differ from the defaults are written.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from oracle.config import Config, Secret

HEADER = (
    "# Written by `bme-oracle dev` for the running dev stack (rewritten on every start).\n"
    "# Use it from another terminal: bme-oracle market status --config {path}\n"
)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, tuple):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def _default(field: dataclasses.Field[Any]) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return dataclasses.MISSING  # required: always written


def _table(section: Any) -> list[str]:
    lines = []
    for field in dataclasses.fields(section):
        value = getattr(section, field.name)
        if isinstance(value, Secret) or value == _default(field):
            continue
        lines.append(f"{field.name} = {_value(value)}")
    return lines


def config_toml(config: Config, path: Path) -> str:
    """The TOML text of ``config`` (keys that differ from the defaults; no secrets)."""
    parts = [HEADER.format(path=path)]
    for field in dataclasses.fields(config):
        section = getattr(config, field.name)
        if field.name == "sources":
            for source in section:
                parts.append("[[sources]]\n" + "\n".join(_table(source)) + "\n")
            continue
        lines = _table(section)
        if lines:
            parts.append(f"[{field.name}]\n" + "\n".join(lines) + "\n")
    return "\n".join(parts)


def write_config(config: Config, path: Path) -> Path:
    """Write ``config`` to ``path`` (replacing it) and return its absolute path."""
    path = path.resolve()
    path.write_text(config_toml(config, path), encoding="utf-8")
    return path
