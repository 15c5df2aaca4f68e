"""aiogram's Bot API models, built when first used instead of all at import.

`import aiogram` builds a pydantic validator and serializer for each of its ~600 Bot API types
and methods: ~2 s of CPU and ~110 MB of RSS on this project's 2-core machine, most of a running
bot's start-up time and a third of its memory (docs/benchmarks.md, issue 9). A bot uses a few
dozen of them (updates, messages, callback queries, the methods it calls). aiogram already marks
its types `defer_build`, then undoes it: `aiogram/types/__init__.py` calls `model_rebuild()` on
every type to hand it the package namespace for the forward references that its modules import
only for type checkers.

`install()` (run by `bot/__init__.py`, so before any module of ours imports aiogram) wraps the
one import of the `aiogram` package: while it executes, pydantic's default is `defer_build=True`
(so aiogram's methods defer too) and `model_rebuild()` only collects the namespace it is handed.
Afterwards those names are placed in the aiogram modules' own globals, where pydantic looks when
a model is first validated or serialized, and everything is as before. Nothing outside the
package's import is touched: models defined later (ours) build as usual.

It leans on two pydantic internals (`config_defaults`, and the namespace aiogram hands to
`model_rebuild`); if they are not there, aiogram is imported the ordinary way. The whole test
suite runs through this path, as the bot does.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any

_PACKAGE = "aiogram"
_MODEL_PACKAGES = ("aiogram.types.", "aiogram.methods.")
_IDENTIFIER = re.compile(r"[A-Za-z_]\w*")


def install() -> None:
    """Defer aiogram's model building, unless aiogram is already imported (too late to)."""
    if _PACKAGE in sys.modules or any(isinstance(f, _Finder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _Finder())


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Any = None, target: ModuleType | None = None) -> ModuleSpec | None:
        if fullname != _PACKAGE:
            return None
        sys.meta_path.remove(self)  # one import only; and so the lookup below finds the real one
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _DeferringLoader(spec.loader)  # type: ignore[arg-type]
        return spec


class _DeferringLoader(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader) -> None:
        self._loader = loader

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        namespace: dict[str, Any] = {}
        with _models_built_on_first_use(namespace):
            self._loader.exec_module(module)
        _resolve_forward_references(namespace)

    def __getattr__(self, name: str) -> Any:  # is_package, get_code, resources: the real loader's
        return getattr(self._loader, name)


@contextmanager
def _models_built_on_first_use(namespace: dict[str, Any]) -> Iterator[None]:
    try:
        from pydantic import BaseModel
        from pydantic._internal._config import config_defaults
    except ImportError:  # another pydantic: import aiogram as it comes
        yield
        return
    if not isinstance(config_defaults, dict) or "defer_build" not in config_defaults:
        yield
        return

    def collect_namespace(cls: type, *args: Any, _types_namespace: dict[str, Any] | None = None, **kwargs: Any) -> None:
        namespace.update(_types_namespace or {})

    original_default, original_rebuild = config_defaults["defer_build"], BaseModel.__dict__["model_rebuild"]
    config_defaults["defer_build"] = True
    BaseModel.model_rebuild = classmethod(collect_namespace)  # type: ignore[assignment,method-assign]
    try:
        yield
    finally:
        config_defaults["defer_build"] = original_default
        BaseModel.model_rebuild = original_rebuild  # type: ignore[method-assign]


def _resolve_forward_references(namespace: dict[str, Any]) -> None:
    """Give each model module the names its annotations use and it imports only for type
    checkers; only those (every name in every module would cost ~8 MB of module dicts)."""
    for module_name, module in list(sys.modules.items()):
        if not module_name.startswith(_MODEL_PACKAGES) or module is None:
            continue
        for name in _annotation_names(module) - module.__dict__.keys():
            if name in namespace:
                module.__dict__[name] = namespace[name]


def _annotation_names(module: ModuleType) -> set[str]:
    names: set[str] = set()
    for value in list(vars(module).values()):
        if isinstance(value, type) and value.__module__ == module.__name__:
            for annotation in value.__dict__.get("__annotations__", {}).values():
                if isinstance(annotation, str):  # aiogram's modules: `from __future__ import annotations`
                    names.update(_IDENTIFIER.findall(annotation))
    return names
