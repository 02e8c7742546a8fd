"""Signatures built rather than written, for parameters declared once and used in several places:
the ``create`` of families of functions that share most of their parameters (the open-vocabulary
functions, the torchvision ones, the SAM family) and ``annotate_dataset``, which takes
``plan_run``'s.

Users see the built signature wherever they name parameters (``-p name=value``, the FiftyOne
form, ``autoannotate functions``, ``help()``: all read ``inspect.signature``), and a call is
checked against it like a written one.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, ForwardRef, ParamSpec, TypeVar, cast

R = TypeVar("R")


def with_signature(
    call: Callable[..., R], signature: inspect.Signature, doc: str, name: str = "create"
) -> Callable[..., R]:
    """``call`` as a function ``name`` with ``signature`` and the docstring ``doc``: a call binds
    its arguments to ``signature`` (a wrong one is a ``TypeError`` naming ``name()``, as for a
    written function), fills in the defaults and passes every parameter to ``call`` by name
    (those of a ``**kwargs`` parameter spread)."""
    spread = [p.name for p in signature.parameters.values() if p.kind is p.VAR_KEYWORD]

    def create(*args: Any, **kwargs: Any) -> R:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as e:
            raise TypeError(f"{name}() {e}") from None
        bound.apply_defaults()
        named = dict(bound.arguments)
        for kwargs_name in spread:
            named.update(named.pop(kwargs_name))
        return call(**named)

    create.__module__ = call.__module__
    create.__name__ = create.__qualname__ = name
    create.__doc__ = doc
    create.__signature__ = signature  # type: ignore[attr-defined]
    create.__wrapped__ = call  # type: ignore[attr-defined]
    return create


P = ParamSpec("P")


def declare(defaults: Mapping[str, Any], parameters: Any) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorates ``create(**params: Unpack[parameters])`` (``parameters``: a ``TypedDict``, so that
    type checkers check every caller by name and type) with the signature of a written function
    (:func:`with_signature`): the names of ``defaults`` in its order, each with its default and its
    type in ``parameters``, any of them positional or by name; its docstring is ``create``'s. A
    family of functions whose ``create`` functions share most of their parameters (the SAM family)
    writes them once: in a ``TypedDict`` it extends and in one dict of defaults."""
    hints = {k: v.__forward_arg__ if isinstance(v, ForwardRef) else v for k, v in parameters.__annotations__.items()}
    if set(defaults) != set(hints):
        raise TypeError(f"the parameters {sorted(defaults)} do not match the typed parameters {sorted(hints)}")
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    declared = [inspect.Parameter(k, kind, default=v, annotation=hints[k]) for k, v in defaults.items()]

    def decorate(create: Callable[P, R]) -> Callable[P, R]:
        signature = inspect.Signature(declared, return_annotation=inspect.signature(create).return_annotation)
        return cast("Callable[P, R]", with_signature(create, signature, create.__doc__ or ""))

    return decorate


def parameters_of(source: Callable[P, Any]) -> Callable[[Callable[..., R]], Callable[P, R]]:
    """Decorates a function that takes ``source``'s parameters, declared once in ``source``: mypy
    checks its callers against them (``ParamSpec``); ``inspect.signature`` and ``help()`` show
    them with the function's own return annotation and docstring (:func:`with_signature`); its
    body gets every argument by name."""

    def decorate(f: Callable[..., R]) -> Callable[P, R]:
        signature = inspect.signature(source).replace(return_annotation=inspect.signature(f).return_annotation)
        checked = with_signature(f, signature, f.__doc__ or "", name=f.__name__)
        checked.__annotations__ = {**source.__annotations__, "return": signature.return_annotation}
        return cast("Callable[P, R]", checked)

    return decorate
