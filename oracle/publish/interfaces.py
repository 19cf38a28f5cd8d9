"""Render a Solidity interface from a compiled artifact's ABI and NatSpec.

Why this exists: integrators compile against ``IDifficultyOracle`` / ``IBmeAggregator``
rather than the implementation, and a hand-kept interface drifts from the contract.
Here the interface is derived from the committed artifact alone (``abi``, ``userdoc``,
``devdoc``; see ``compile.py``), so compiling the rendered interface gives back the
contract's ABI (constructor aside). ``kit.py`` writes the results; this module is pure.

Rendering rules: structs (from ``internalType``), events, errors and functions, each
sorted by name; every function ``external`` with its state mutability; reference-type
parameters ``calldata``, returns ``memory``; a ``contract X`` type becomes ``IX`` when
X is one of the interfaced contracts (imported from ``./IX.sol``), else ``address``; a
struct is used from the ``IX`` that declares it, else declared here; enums and
user-defined value types become their ABI type. NatSpec is re-wrapped to 100 columns.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from oracle.errors import OracleError

#: Custom errors in interfaces need 0.8.4; the committed artifacts are compiled with 0.8.28.
PRAGMA = "^0.8.4"
LINE_WIDTH = 100
INDENT = "    "
_ELEMENTARY = re.compile(r"^(address|bool|string|bytes\d*|u?int\d*)$")
_ARRAY_SUFFIX = re.compile(r"(\[\d*\])*$")


class InterfaceError(OracleError):
    """The ABI holds something this renderer cannot express (e.g. a struct named twice)."""


def interface_name(contract: str) -> str:
    return f"I{contract}"


@dataclass
class _Context:
    """What the rendering of one contract's interface collects on the way."""

    contract: str
    #: contract name -> the internalTypes its ABI mentions, for every interfaced contract
    interfaced: dict[str, frozenset[str]]
    structs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    imports: set[str] = field(default_factory=set)


def _split_array(text: str) -> tuple[str, str]:
    suffix = _ARRAY_SUFFIX.search(text)
    cut = suffix.start() if suffix else len(text)
    return text[:cut], text[cut:]


def _type_name(param: Mapping[str, Any], ctx: _Context) -> str:
    """The Solidity type of an ABI parameter, registering structs and imports it needs."""
    abi_type: str = param["type"]
    internal: str = param.get("internalType") or abi_type
    base, suffix = _split_array(internal)
    if base.startswith("struct "):
        owner, _, name = base.removeprefix("struct ").rpartition(".")
        if owner != ctx.contract and base in ctx.interfaced.get(owner, frozenset()):
            ctx.imports.add(owner)  # I<owner> declares it
            return f"{interface_name(owner)}.{name}{suffix}"
        components = list(param.get("components") or [])
        known = ctx.structs.get(name)
        if known is not None and _signature_of(known) != _signature_of(components):
            raise InterfaceError(f"{ctx.contract}: two different structs named {name}")
        ctx.structs[name] = components
        for component in components:
            _type_name(component, ctx)
        return f"{name}{suffix}"
    if base.startswith("contract "):
        other = base.removeprefix("contract ")
        if other in ctx.interfaced:
            if other != ctx.contract:
                ctx.imports.add(other)
            return f"{interface_name(other)}{suffix}"
        return _split_array(abi_type)[0] + suffix
    if base == "address payable" or _ELEMENTARY.match(base):
        return internal
    return abi_type  # enums and user-defined value types: their ABI type


def _internal_types(value: Any) -> frozenset[str]:
    """Every ``internalType`` in an ABI, array suffixes removed."""
    if isinstance(value, dict):
        found = {_split_array(value["internalType"])[0]} if "internalType" in value else set()
        return frozenset(found.union(*(_internal_types(v) for v in value.values())))
    if isinstance(value, list):
        return frozenset().union(*(_internal_types(v) for v in value))
    return frozenset()


def _is_reference(param: Mapping[str, Any]) -> bool:
    abi_type: str = param["type"]
    return abi_type in {"string", "bytes"} or abi_type.endswith("]") or abi_type == "tuple"


def _canonical(param: Mapping[str, Any]) -> str:
    abi_type: str = param["type"]
    if abi_type.startswith("tuple"):
        inner = ",".join(_canonical(c) for c in param.get("components") or [])
        return f"({inner}){abi_type.removeprefix('tuple')}"
    return abi_type


def _signature_of(params: Iterable[Mapping[str, Any]]) -> str:
    return ",".join(_canonical(p) for p in params)


def signature(item: Mapping[str, Any]) -> str:
    """``name(type,...)`` as NatSpec output and selectors key it (tuples expanded)."""
    return f"{item.get('name', '')}({_signature_of(item.get('inputs') or [])})"


def _params(
    params: Iterable[Mapping[str, Any]],
    ctx: _Context,
    *,
    location: str = "",
    indexed: bool = False,
) -> list[str]:
    out = []
    for param in params:
        words = [_type_name(param, ctx)]
        if indexed and param.get("indexed"):
            words.append("indexed")
        if location and _is_reference(param):
            words.append(location)
        if param.get("name"):
            words.append(param["name"])
        out.append(" ".join(words))
    return out


def _clean(text: Any) -> str:
    return " ".join(str(text).split())


def _natspec(tags: list[tuple[str, str]], indent: str) -> list[str]:
    """``/// @tag text`` lines, wrapped; continuation lines line up under the text."""
    lines: list[str] = []
    for tag, text in tags:
        text = _clean(text)
        if not text:
            continue
        head = f"{indent}/// @{tag} "
        follow = f"{indent}///" + " " * (len(tag) + 3)
        lines.extend(
            textwrap.wrap(
                text,
                width=LINE_WIDTH,
                initial_indent=head,
                subsequent_indent=follow,
                break_long_words=False,
                break_on_hyphens=False,
            )
        )
    return lines


def _member_docs(
    item: Mapping[str, Any], user: Mapping[str, Any], dev: Mapping[str, Any]
) -> list[tuple[str, str]]:
    """NatSpec tags of one ABI member from the artifact's userdoc and devdoc."""
    kind = item["type"]
    sig = signature(item)
    section = {"function": "methods", "event": "events", "error": "errors"}.get(kind, "")
    user_entry = (user.get(section) or {}).get(sig) or {}
    dev_entry = (dev.get(section) or {}).get(sig) or {}
    if kind == "error":  # errors map to a list (one per declaration with that signature)
        user_entry = user_entry[0] if user_entry else {}
        dev_entry = dev_entry[0] if dev_entry else {}
    if kind == "function" and not dev_entry:  # a public state variable's getter
        dev_entry = (dev.get("stateVariables") or {}).get(item["name"]) or {}
    tags: list[tuple[str, str]] = []
    if user_entry.get("notice"):
        tags.append(("notice", user_entry["notice"]))
    if dev_entry.get("details"):
        tags.append(("dev", dev_entry["details"]))
    tags.extend(
        (key, value) for key, value in sorted(dev_entry.items()) if key.startswith("custom:")
    )
    params = dev_entry.get("params") or {}
    for param in item.get("inputs") or []:
        name = param.get("name")
        if name and name in params:
            tags.append(("param", f"{name} {params[name]}"))
    returns = dev_entry.get("returns") or {}
    for position, param in enumerate(item.get("outputs") or []):
        name = param.get("name")
        if name and name in returns:
            tags.append(("return", f"{name} {returns[name]}"))
        elif f"_{position}" in returns:
            tags.append(("return", returns[f"_{position}"]))
    return tags


def _exploded(opening: str, params: list[str], closing: str, indent: str) -> list[str]:
    """``opening(`` / one parameter a line / ``)closing``, as forge fmt lays out long lists."""
    if not params:
        return [f"{indent}{opening}(){closing}"]
    body = [f"{indent}{INDENT}{param}," for param in params]
    body[-1] = body[-1].removesuffix(",")
    return [f"{indent}{opening}(", *body, f"{indent}){closing}"]


def _declaration(
    keyword: str, params: list[str], clauses: list[str], returns: list[str] | None = None
) -> list[str]:
    """One line if it fits; else the clauses one a line, lists exploded where still too long."""
    tail = clauses + ([f"returns ({', '.join(returns)})"] if returns else [])
    line = f"{INDENT}{keyword}({', '.join(params)}) {' '.join(tail)}".rstrip() + ";"
    if len(line) <= LINE_WIDTH:
        return [line]
    head = f"{INDENT}{keyword}({', '.join(params)})"
    lines = [head] if len(head) <= LINE_WIDTH else _exploded(keyword, params, "", INDENT)
    lines.extend(f"{INDENT * 2}{clause}" for clause in clauses)
    if returns:
        short = f"{INDENT * 2}returns ({', '.join(returns)})"
        lines.extend(
            [short] if len(short) < LINE_WIDTH else _exploded("returns ", returns, "", INDENT * 2)
        )
    lines[-1] += ";"
    return lines


def _member(item: Mapping[str, Any], ctx: _Context) -> list[str]:
    kind = item["type"]
    name = item.get("name", "")
    inputs = item.get("inputs") or []
    if kind == "event":
        suffix = ["anonymous"] if item.get("anonymous") else []
        return _declaration(f"event {name}", _params(inputs, ctx, indexed=True), suffix)
    if kind == "error":
        return _declaration(f"error {name}", _params(inputs, ctx), [])
    mutability = item.get("stateMutability", "nonpayable")
    if kind in {"fallback", "receive"}:
        payable = " payable" if mutability == "payable" else ""
        return [f"{INDENT}{kind}() external{payable};"]
    clauses = ["external"]
    if mutability != "nonpayable":
        clauses.append(mutability)
    outputs = item.get("outputs") or []
    return _declaration(
        f"function {name}",
        _params(inputs, ctx, location="calldata"),
        clauses,
        _params(outputs, ctx, location="memory"),
    )


def _struct(name: str, ctx: _Context) -> list[str]:
    fields = [
        f"{INDENT * 2}{_type_name(component, ctx)} {component.get('name') or f'field{i}'};"
        for i, component in enumerate(ctx.structs[name])
    ]
    return [f"{INDENT}struct {name} {{", *fields, f"{INDENT}}}"]


def _sort_key(item: Mapping[str, Any]) -> tuple[int, str, str]:
    order = {"event": 0, "error": 1, "fallback": 2, "receive": 3, "function": 4}
    return order[item["type"]], item.get("name", ""), signature(item)


def render_interface(
    contract: str,
    artifact: Mapping[str, Any],
    *,
    interfaced: Mapping[str, Mapping[str, Any]] | None = None,
    header: Iterable[str] = (),
) -> str:
    """The Solidity source of ``I<contract>``.

    ``interfaced`` holds the artifacts of the contracts that get an interface too: a
    ``contract X`` parameter becomes ``IX``, a struct that ``IX`` declares is used from
    there. ``header`` lines go below the SPDX line as ``//`` comments.
    """
    others = dict(interfaced or {})
    others[contract] = artifact
    ctx = _Context(contract, {name: _internal_types(a["abi"]) for name, a in others.items()})
    user: Mapping[str, Any] = artifact.get("userdoc") or {}
    dev: Mapping[str, Any] = artifact.get("devdoc") or {}
    members = sorted(
        (item for item in artifact["abi"] if item["type"] != "constructor"), key=_sort_key
    )
    # (group, lines) per declaration: structs first, then members by kind
    blocks: list[tuple[str, list[str]]] = []
    for item in members:
        block = _natspec(_member_docs(item, user, dev), INDENT)
        block.extend(_member(item, ctx))
        blocks.append((item["type"], block))
    structs = [("struct", _struct(name, ctx)) for name in sorted(ctx.structs)]
    lines = ["// SPDX-License-Identifier: MIT"]
    lines.extend(f"// {line}".rstrip() for line in header)
    lines.extend([f"pragma solidity {PRAGMA};", ""])
    for other in sorted(ctx.imports):
        lines.append(f'import {{{interface_name(other)}}} from "./{interface_name(other)}.sol";')
    if ctx.imports:
        lines.append("")
    title = interface_name(contract)
    contract_tags = [("title", title), ("notice", user.get("notice", ""))]
    contract_tags.append(("dev", dev.get("details", "")))
    contract_tags.extend((k, v) for k, v in sorted(dev.items()) if k.startswith("custom:"))
    lines.extend(_natspec(contract_tags, ""))
    lines.append(f"interface {title} {{")
    previous: tuple[str, list[str]] | None = None
    for group, block in structs + blocks:
        # a blank line between groups and around every declaration that carries NatSpec
        if previous and (group != previous[0] or len(block) > 1 or len(previous[1]) > 1):
            lines.append("")
        lines.extend(block)
        previous = (group, block)
    lines.extend(["}", ""])
    return "\n".join(lines)
