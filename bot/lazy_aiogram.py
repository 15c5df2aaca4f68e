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
`model_rebuild`), so it runs only on the pydantic versions it was tested with (`TESTED_PYDANTIC`)
and only while `STOCKBOT_LAZY_AIOGRAM` is not `0`; otherwise aiogram is imported the ordinary way.
If the internals are there but behave differently (aiogram's rebuild handed no namespace), every
model is rebuilt at once as aiogram itself would. The whole test suite runs through this path, as
the bot does, and tests/test_lazy_aiogram.py compares every Bot API type's schema with an
ordinary import's.
"""

from __future__ import annotations

import importlib.abc
import importlib.metadata
import importlib.util
import os
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
SWITCH = "STOCKBOT_LAZY_AIOGRAM"
# [lowest, first untested): the pydantic minors whose internals this was run against. Widen it
# only after tests/test_lazy_aiogram.py passes on the new version.
TESTED_PYDANTIC = ((2, 7), (2, 14))


def enabled() -> bool:
    if os.environ.get(SWITCH, "1").strip() == "0":
        return False
    try:
        version = importlib.metadata.version("pydantic")
    except importlib.metadata.PackageNotFoundError:
        return False
    return _within(version, *TESTED_PYDANTIC)


def _within(version: str, lowest: tuple[int, int], untested: tuple[int, int]) -> bool:
    major_minor = tuple(int(part) for part in re.findall(r"\d+", version)[:2])
    return len(major_minor) == 2 and lowest <= major_minor < untested


def install() -> None:
    """Defer aiogram's model building, unless aiogram is already imported (too late to) or the
    installed pydantic is one this was not tested with."""
    if _PACKAGE in sys.modules or any(isinstance(f, _Finder) for f in sys.meta_path) or not enabled():
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
        with _models_built_on_first_use(namespace) as deferred:
            self._loader.exec_module(module)
        if deferred and not namespace:
            _rebuild_all_now()
        else:
            _resolve_forward_references(namespace)

    def __getattr__(self, name: str) -> Any:  # is_package, get_code, resources: the real loader's
        return getattr(self._loader, name)


@contextmanager
def _models_built_on_first_use(namespace: dict[str, Any]) -> Iterator[bool]:
    """Yields whether building is deferred."""
    try:
        from pydantic import BaseModel
        from pydantic._internal._config import config_defaults
    except ImportError:  # another pydantic: import aiogram as it comes
        yield False
        return
    if not isinstance(config_defaults, dict) or "defer_build" not in config_defaults:
        yield False
        return

    def collect_namespace(cls: type, *args: Any, _types_namespace: dict[str, Any] | None = None, **kwargs: Any) -> None:
        namespace.update(_types_namespace or {})

    original_default, original_rebuild = config_defaults["defer_build"], BaseModel.__dict__["model_rebuild"]
    config_defaults["defer_build"] = True
    BaseModel.model_rebuild = classmethod(collect_namespace)  # type: ignore[assignment,method-assign]
    try:
        yield True
    finally:
        config_defaults["defer_build"] = original_default
        BaseModel.model_rebuild = original_rebuild  # type: ignore[method-assign]


def _rebuild_all_now() -> None:
    """What aiogram's own import does, for when the deferral's assumptions did not hold."""
    from typing import Literal, Optional, Union

    import aiogram.types as types  # already imported: the package import just ran it
    from aiogram.client.default import Default

    names = {"List": list, "Optional": Optional, "Union": Union, "Literal": Literal, "Default": Default,
             **{name: getattr(types, name) for name in types.__all__}}
    for name in types.__all__:
        entity = getattr(types, name)
        if hasattr(entity, "model_rebuild"):
            entity.model_rebuild(force=True, _types_namespace=names)


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
