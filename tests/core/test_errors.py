"""One exception root: every error omnisync raises on purpose is an OmnisyncError."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import omnisync
from omnisync.errors import OmnisyncError

#: The emulator stands in for Omnisend; its errors never reach an omnisync caller.
OUTSIDE = ("omnisync.emulator",)


def _public_exceptions() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for module_info in pkgutil.walk_packages(omnisync.__path__, "omnisync."):
        if module_info.name.startswith(OUTSIDE) or module_info.name == "omnisync.__main__":
            continue
        module = importlib.import_module(module_info.name)
        for name, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__ == module.__name__
                and not name.startswith("_")
            ):
                found[f"{module.__name__}.{name}"] = value
    return found


def test_every_public_exception_derives_from_the_one_root() -> None:
    exceptions = _public_exceptions()
    assert len(exceptions) > 20  # the walk found the tree, not nothing
    strays = sorted(name for name, cls in exceptions.items() if not issubclass(cls, OmnisyncError))
    assert strays == []


def test_the_tree_in_the_docstring_names_every_exception() -> None:
    documented = omnisync.errors.__doc__ or ""
    missing = sorted(
        name
        for name, cls in _public_exceptions().items()
        if cls is not OmnisyncError and cls.__name__ not in documented
    )
    assert missing == []
