"""One declaration of the parameters several ``create`` functions share.

A family of functions whose ``create`` functions take the same parameters (the SAM family:
``checkpoint``, ``pretrained``, ``device``, ``dtype`` and the settings of its kind) writes them
once: their types in a ``TypedDict`` (so that type checkers check every caller by name and type)
and their order and defaults in a dict. :func:`declare` gives a ``create(**params:
Unpack[TypedDict])`` the signature users see through ``-p``, the FiftyOne form and
``autoannotate functions`` (:func:`autoannotate.loading.describe_parameters`), and the errors of a
plain function for unknown names.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any, ForwardRef, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


def declare(defaults: Mapping[str, Any], parameters: Any) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorates ``create(**params: Unpack[parameters])`` (``parameters``: a ``TypedDict``) with
    the signature of a plain function: the names of ``defaults`` in its order, each with its
    default and its type in ``parameters``, any of them positional or by name. A call binds its
    arguments to that signature (``create() got an unexpected keyword argument ...`` as for a plain
    function), fills in the defaults and passes every parameter to ``create`` by name."""
    hints = {k: v.__forward_arg__ if isinstance(v, ForwardRef) else v for k, v in parameters.__annotations__.items()}
    if set(defaults) != set(hints):
        raise TypeError(f"the parameters {sorted(defaults)} do not match the typed parameters {sorted(hints)}")
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    declared = [inspect.Parameter(k, kind, default=v, annotation=hints[k]) for k, v in defaults.items()]

    def decorate(create: Callable[P, R]) -> Callable[P, R]:
        signature = inspect.Signature(declared, return_annotation=inspect.signature(create).return_annotation)

        @functools.wraps(create)
        def with_signature(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                bound = signature.bind(*args, **kwargs)
            except TypeError as e:
                raise TypeError(f"{create.__name__}() {e}") from None
            bound.apply_defaults()
            return create(**bound.arguments)  # type: ignore[call-arg]  # every parameter is in P

        with_signature.__signature__ = signature  # type: ignore[attr-defined]
        return with_signature

    return decorate
