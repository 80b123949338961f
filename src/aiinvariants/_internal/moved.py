"""Module paths made private in 0.2, still importable for one release.

Implementation modules became ``_private`` (``aiinvariants.filters.secrets``
is now ``aiinvariants.filters._secrets``); the names users need are exported
by the public packages. Importing an old path still works, gives the very
same module, and warns with a ``DeprecationWarning`` naming the public
package to import from instead. The aliases go in the release after.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from types import CodeType, ModuleType

__all__ = ["HOMES", "MOVED", "install", "public_home"]

MOVED: dict[str, str] = {
    "aiinvariants.audit.canonical": "aiinvariants.audit._canonical",
    "aiinvariants.audit.chain": "aiinvariants.audit._chain",
    "aiinvariants.audit.events": "aiinvariants.audit._events",
    "aiinvariants.audit.keys": "aiinvariants.audit._keys",
    "aiinvariants.audit.log": "aiinvariants.audit._log",
    "aiinvariants.audit.records": "aiinvariants.audit._records",
    "aiinvariants.audit.sinks": "aiinvariants.audit._sinks",
    "aiinvariants.audit.verify": "aiinvariants.audit._verify",
    "aiinvariants.auth.cache": "aiinvariants.auth._cache",
    "aiinvariants.auth.exchange": "aiinvariants.auth._exchange",
    "aiinvariants.auth.introspection": "aiinvariants.auth._introspection",
    "aiinvariants.auth.jwks": "aiinvariants.auth._jwks",
    "aiinvariants.auth.jwt": "aiinvariants.auth._jwt",
    "aiinvariants.auth.metadata": "aiinvariants.auth._metadata",
    "aiinvariants.classification": "aiinvariants._classification",
    "aiinvariants.cli": "aiinvariants._cli",
    "aiinvariants.errors": "aiinvariants._errors",
    "aiinvariants.export": "aiinvariants._export",
    "aiinvariants.filters.base": "aiinvariants.filters._base",
    "aiinvariants.filters.competitors": "aiinvariants.filters._competitors",
    "aiinvariants.filters.pii": "aiinvariants.filters._pii",
    "aiinvariants.filters.pipeline": "aiinvariants.filters._pipeline",
    "aiinvariants.filters.secret_rules": "aiinvariants.filters._secret_rules",
    "aiinvariants.filters.secrets": "aiinvariants.filters._secrets",
    "aiinvariants.filters.streaming": "aiinvariants.filters._streaming",
    "aiinvariants.filters.system_prompt": "aiinvariants.filters._system_prompt",
    "aiinvariants.filters.tool_outputs": "aiinvariants.filters._tool_outputs",
    "aiinvariants.guard": "aiinvariants._guard",
    "aiinvariants.llm.classifiers": "aiinvariants.filters.classifiers",
    "aiinvariants.llm.guarded": "aiinvariants.llm._guarded",
    "aiinvariants.llm.model_catalog": "aiinvariants.llm._model_catalog",
    "aiinvariants.llm.models": "aiinvariants.llm._models",
    "aiinvariants.llm.optout": "aiinvariants.llm._optout",
    "aiinvariants.llm.regions": "aiinvariants.llm._regions",
    "aiinvariants.llm.streams": "aiinvariants.llm._streams",
    "aiinvariants.policy.model": "aiinvariants.policy._model",
    "aiinvariants.policy.resources": "aiinvariants.policy._resources",
    "aiinvariants.policy.sections": "aiinvariants.policy._sections",
    "aiinvariants.principal": "aiinvariants._principal",
    "aiinvariants.scopes": "aiinvariants._scopes",
    "aiinvariants.testing.assertions": "aiinvariants.testing._assertions",
    "aiinvariants.testing.stats": "aiinvariants.testing._stats",
    "aiinvariants.usecases": "aiinvariants._usecases",
    "aiinvariants.verify": "aiinvariants._verify",
}


#: Where the names of a moved module are exported when that is not the new
#: path's public part.
HOMES: dict[str, str] = {"aiinvariants.classification": "aiinvariants.retrieval"}


def public_home(old: str) -> str:
    """The public module that exports the names of ``old`` now.

    The new path up to its first ``_private`` part:
    ``aiinvariants.filters._secrets`` is exported by ``aiinvariants.filters``.
    """
    if old in HOMES:
        return HOMES[old]
    parts = MOVED[old].split(".")
    private = [i for i, part in enumerate(parts) if part.startswith("_")]
    return ".".join(parts[: private[0]] if private else parts)


class _Alias(importlib.abc.Loader):
    def __init__(self, new: str) -> None:
        self._new = new
        self._spec: importlib.machinery.ModuleSpec | None = None

    def _warn(self, old: str) -> None:
        warnings.warn(
            f"{old} is private since 0.2 (now {self._new}): import its"
            f" public names from {public_home(old)} instead",
            DeprecationWarning,
            stacklevel=3,
        )

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        self._warn(spec.name)
        module = importlib.import_module(self._new)
        self._spec = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        """The module is already executed: it is the new module itself.

        The import system has just set ``module.__spec__`` to the old
        path's spec (it always does): the new module keeps its own, so
        ``find_spec``, ``reload`` and ``-m`` of the new path still find the
        real module and its source.
        """
        module.__spec__ = self._spec

    def get_code(self, fullname: str) -> CodeType | None:
        """The new module's code (``python -m`` an old path runs the new one)."""
        self._warn(fullname)
        module = importlib.import_module(self._new)
        get_code = getattr(
            module.__spec__.loader if module.__spec__ else None, "get_code", None
        )
        return get_code(self._new) if callable(get_code) else None


class _MovedFinder(importlib.abc.MetaPathFinder):
    def find_spec(
        self,
        fullname: str,
        path: object = None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        new = MOVED.get(fullname)
        if new is None:
            return None
        return importlib.util.spec_from_loader(fullname, _Alias(new))


def install() -> None:
    """Make the old paths importable (once; called by ``aiinvariants``).

    The finder goes first: it answers only the old paths, and an old file
    left behind by an upgrade (``pip --target``, a layer copied over the
    old one) must never load as a second copy of a module (a second
    principal ``ContextVar``, a second registry).
    """
    if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _MovedFinder())
