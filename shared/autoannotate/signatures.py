"""Signatures built rather than written, for parameters declared once and used in several places:
the ``create`` of families of functions that share most of their parameters (the open-vocabulary
functions, the torchvision ones, the SAM family), that of a function that is a class
(:func:`class_create`: Ultralytics, torchvision) and ``annotate_dataset``, which takes
``plan_run``'s.

Users see the built signature wherever they name parameters (``-p name=value``, the FiftyOne
form, ``autoannotate functions``, ``help()``: all read ``inspect.signature``), and a call is
checked against it like a written one. ``typing.get_type_hints`` gives the real types, resolved
where the parameters are declared; type checkers see the parameters the declaration gives them.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping
from typing import Any, ForwardRef, ParamSpec, TypeVar, cast

R = TypeVar("R")


def with_signature(
    call: Callable[..., R], signature: inspect.Signature, doc: str, hints: Mapping[str, Any], name: str = "create"
) -> Callable[..., R]:
    """``call`` as a function ``name`` with ``signature`` and the docstring ``doc``: a call binds
    its arguments to ``signature`` (a wrong one is a ``TypeError`` naming ``name()``, as for a
    written function), fills in the defaults and passes every parameter to ``call`` by name
    (those of a ``**kwargs`` parameter spread). ``hints``: the parameters' and the return's types,
    resolved (what ``typing.get_type_hints`` returns for the function)."""
    spread = [p.name for p in signature.parameters.values() if p.kind is p.VAR_KEYWORD]

    def create(*args: Any, **kwargs: Any) -> R:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as e:
            raise TypeError(f"{name}() {_positional_count(signature, len(args)) or e}") from None
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
    create.__annotations__ = dict(hints)
    return create


P = ParamSpec("P")


def declare(defaults: Mapping[str, Any], parameters: Any) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorates ``create(**params: Unpack[parameters])`` (``parameters``: a ``TypedDict``, so that
    type checkers check every caller by name and type) with the signature of a written function
    (:func:`with_signature`): the names of ``defaults`` in its order, each with its default and its
    type in ``parameters``, any of them positional or by name; its docstring is ``create``'s. A
    family of functions whose ``create`` functions share most of their parameters (the SAM family)
    writes them once: in a ``TypedDict`` it extends and in one dict of defaults."""
    shown = {k: v.__forward_arg__ if isinstance(v, ForwardRef) else v for k, v in parameters.__annotations__.items()}
    if set(defaults) != set(shown):
        raise TypeError(f"the parameters {sorted(defaults)} do not match the typed parameters {sorted(shown)}")
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    declared = [inspect.Parameter(k, kind, default=v, annotation=shown[k]) for k, v in defaults.items()]
    types = typing.get_type_hints(parameters)

    def decorate(create: Callable[P, R]) -> Callable[P, R]:
        signature = inspect.Signature(declared, return_annotation=inspect.signature(create).return_annotation)
        hints = {**{k: types[k] for k in defaults}, **_return_hint(create)}
        return cast("Callable[P, R]", with_signature(create, signature, create.__doc__ or "", hints))

    return decorate


def parameters_of(source: Callable[P, Any]) -> Callable[[Callable[..., R]], Callable[P, R]]:
    """Decorates a function that takes ``source``'s parameters, declared once in ``source``: mypy
    checks its callers against them (``ParamSpec``); ``inspect.signature`` and ``help()`` show
    them with the function's own return annotation and docstring (:func:`with_signature`); its
    body gets every argument by name."""

    def decorate(f: Callable[..., R]) -> Callable[P, R]:
        signature = inspect.signature(source).replace(return_annotation=inspect.signature(f).return_annotation)
        hints = {**typing.get_type_hints(source), **_return_hint(f)}
        return cast("Callable[P, R]", with_signature(f, signature, f.__doc__ or "", hints, name=f.__name__))

    return decorate


T = TypeVar("T")


def class_create(
    cls: Callable[P, T], signature: inspect.Signature | None = None, doc: str | None = None
) -> Callable[P, T]:
    """The ``create`` of a function that is a class: a function (:func:`with_signature`) that
    builds ``cls``, with its constructor's parameters (or ``signature``'s, their types read from
    the constructors of ``cls`` and its bases; type checkers see the constructor's), returning
    ``cls``, documented by ``doc`` (default: the class's docstring)."""
    if not isinstance(cls, type):
        raise TypeError(f"class_create takes a class, got {cls!r}")
    shown = (signature or inspect.signature(cls)).replace(return_annotation=cls.__name__)
    types: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):  # a subclass's constructor wins over its bases'
        if "__init__" in vars(klass) and klass is not object:
            types.update(typing.get_type_hints(vars(klass)["__init__"]))
    hints = {name: types[name] for name in shown.parameters if name in types} | {"return": cls}
    made = with_signature(cls, shown, (inspect.getdoc(cls) or "") if doc is None else doc, hints)
    return cast("Callable[P, T]", made)


def _return_hint(f: Callable[..., Any]) -> dict[str, Any]:
    """``f``'s return type, resolved, as ``{"return": ...}`` (empty when ``f`` declares none)."""
    hints = typing.get_type_hints(f)
    return {"return": hints["return"]} if "return" in hints else {}


def _positional_count(signature: inspect.Signature, given: int) -> str:
    """Python's own words for a call with more positional arguments than ``signature`` takes
    (``takes from 0 to 10 positional arguments but 17 were given``); ``""`` for any other call."""
    params = signature.parameters.values()
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return ""
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if given <= len(positional):
        return ""
    required = sum(p.default is p.empty for p in positional)
    takes = f"{len(positional)}" if required == len(positional) else f"from {required} to {len(positional)}"
    plural = "" if takes == "1" else "s"
    return f"takes {takes} positional argument{plural} but {given} {'was' if given == 1 else 'were'} given"
