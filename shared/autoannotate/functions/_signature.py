"""A ``create`` whose signature is built rather than written: for families of functions that
share most of their parameters (the open-vocabulary functions, the torchvision ones).

Users see the built signature wherever they name parameters (``-p name=value``, the FiftyOne
form, ``autoannotate functions``: all read ``inspect.signature``), and a call is checked against
it like a written one.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

R = TypeVar("R")


def with_signature(call: Callable[..., R], signature: inspect.Signature, doc: str) -> Callable[..., R]:
    """``call`` as a function ``create`` with ``signature`` and the docstring ``doc``: a call binds
    its arguments to ``signature`` (a wrong one is a ``TypeError`` naming ``create()``, as for a
    written function), fills in the defaults and passes every parameter to ``call`` by name
    (those of a ``**kwargs`` parameter spread)."""
    spread = [p.name for p in signature.parameters.values() if p.kind is p.VAR_KEYWORD]

    def create(*args: Any, **kwargs: Any) -> R:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as e:
            raise TypeError(f"create() {e}") from None
        bound.apply_defaults()
        named = dict(bound.arguments)
        for name in spread:
            named.update(named.pop(name))
        return call(**named)

    create.__module__ = call.__module__
    create.__qualname__ = "create"
    create.__doc__ = doc
    create.__signature__ = signature  # type: ignore[attr-defined]
    create.__wrapped__ = call  # type: ignore[attr-defined]
    return create
