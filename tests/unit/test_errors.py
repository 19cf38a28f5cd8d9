"""The drawing in ``oracle/errors.py``'s docstring is the real exception tree, and complete.

Every exception class defined anywhere in ``oracle`` must appear in the
drawing under its real parent, and the drawing must name no class that does
not exist; so the tree an operator reads is the tree the code raises.
"""

from __future__ import annotations

import importlib
import pkgutil
import re

import oracle
import oracle.errors

#: "├── Name" / "└── Name" at any depth; the indent gives the level.
_ROW = re.compile(r"^(?P<indent>[ │]*)(?:├── |└── )(?P<name>[A-Za-z]\w*)")


def oracle_modules() -> list[str]:
    """Every module of the package but ``__main__`` (it runs the CLI) and the migrations."""
    return [
        m.name
        for m in pkgutil.walk_packages(oracle.__path__, "oracle.")
        if ".migrations" not in m.name and not m.name.endswith("__main__")
    ]


def drawn_tree() -> dict[str, str]:
    """``{class name: parent name}`` as drawn in the errors module's docstring."""
    doc = oracle.errors.__doc__ or ""
    lines = doc.splitlines()
    root = next(line.strip() for line in lines if line.strip() == "OracleError")
    parents: dict[str, str] = {}
    stack: list[tuple[int, str]] = [(-1, root)]
    for line in lines:
        match = _ROW.match(line)
        if match is None:
            continue
        level = len(match["indent"]) // 4
        while stack[-1][0] >= level:
            stack.pop()
        parents[match["name"]] = stack[-1][1]
        stack.append((level, match["name"]))
    return parents


def real_tree() -> dict[str, str]:
    """``{class name: parent name}`` of every exception class defined in ``oracle``."""
    for name in oracle_modules():
        importlib.import_module(name)
    found: dict[str, str] = {}
    pending = [oracle.errors.OracleError]
    while pending:
        cls = pending.pop()
        for sub in cls.__subclasses__():
            if sub.__module__.startswith("oracle."):
                found[sub.__name__] = sub.__bases__[0].__name__
                pending.append(sub)
    return found


def test_every_oracle_exception_derives_from_oracle_error() -> None:
    strays = []
    for name in oracle_modules():
        mod = importlib.import_module(name)
        for value in vars(mod).values():
            if (
                isinstance(value, type)
                and issubclass(value, BaseException)
                and value.__module__ == mod.__name__
                and not issubclass(value, oracle.errors.OracleError)
            ):
                strays.append(f"{mod.__name__}.{value.__name__}")
    assert strays == []


def test_the_drawing_is_the_class_tree() -> None:
    assert drawn_tree() == real_tree()


def test_height_not_found_is_its_own_branch() -> None:
    from oracle.errors import HeightNotFound, SourceDataError, SourceError, SourceUnavailable

    assert HeightNotFound.__bases__ == (SourceError,)
    assert not issubclass(HeightNotFound, SourceUnavailable | SourceDataError)
