"""Where and in what precision torch models run: the one device and precision policy of every
torch-based function (SAM, SAM 2.1 / EdgeTAM and their video forms, SAM 3, OWLv2, Grounding DINO,
the torchvision functions).

- ``device``: ``auto`` (CUDA when present, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``;
- ``dtype``: ``float32`` (default), ``bfloat16`` or ``float16`` (``fp32``, ``bf16``, ``fp16`` and
  ``half`` too).

A function's ``device=None`` / ``dtype=None`` (the default) takes ``AUTOANNOTATE_DEVICE`` /
``AUTOANNOTATE_DTYPE`` (:mod:`autoannotate.settings`), else ``auto`` / ``float32``. Bad values
and CUDA asked for where there is none raise :class:`~autoannotate.errors.BadParameterError`.

Three steps, one helper each:

- :func:`place`: the model moved to its device and cast to its precision (in eval mode);
- :func:`to_model`: a model's inputs (tensors, in dicts, lists, tuples or a ``BatchEncoding``)
  moved to the model's device; floating tensors cast to the model's precision, integer and bool
  tensors (token ids, attention masks, point labels) only moved;
- :func:`to_cpu_float`: outputs (scores, boxes, masks, logits; in the same containers or a
  ``ModelOutput``) as float32 on the CPU, before post-processing that needs float32 and before
  numbers leave the function. ``device=`` keeps them on another device (masks upsampled on the GPU).

torchvision's detectors (Faster R-CNN, Mask R-CNN, Keypoint R-CNN, ...) keep float32 weights and
run under :func:`autocast` instead: their box operations (``roi_align``, ``nms``) have no
half-precision CPU kernels, and autocast runs them in float32 while convolutions use the precision.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from .errors import BadParameterError
from .settings import default_device, default_dtype, device_name, dtype_name

__all__ = ["resolve_device", "resolve_dtype", "place", "to_model", "to_cpu_float", "autocast", "model_dtype"]


def resolve_device(device: str | None = None) -> Any:
    """The ``torch.device`` of a device name (None: ``AUTOANNOTATE_DEVICE``, else ``auto``)."""
    import torch

    name = default_device() if device is None else device_name(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise BadParameterError(
                f"device={device!r}: CUDA is not available on this machine (torch {torch.__version__}, "
                "no CUDA device seen); use device=cpu or device=auto"
            )
        index = int(name.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise BadParameterError(
                f"device={device!r}: this machine has {torch.cuda.device_count()} CUDA device(s), numbered from 0"
            )
    return torch.device(name)


def resolve_dtype(dtype: str | None = None, device: Any = None) -> Any:
    """The ``torch.dtype`` of a precision name (None: ``AUTOANNOTATE_DTYPE``, else ``float32``).
    ``device``: where it will run (float16 on a CPU is checked to work there)."""
    import torch

    name = default_dtype() if dtype is None else dtype_name(dtype)
    out = getattr(torch, name)
    if out is torch.float16 and device is not None and torch.device(device).type == "cpu" and not _cpu_half_works():
        raise BadParameterError(
            f"dtype={dtype!r}: this torch ({torch.__version__}) cannot run float16 on the CPU; use bfloat16 "
            "or float32 there (float16 is for GPUs)"
        )
    return out


def _cpu_half_works() -> bool:
    import torch

    try:
        x = torch.ones(1, 2, 4, 4, dtype=torch.float16)
        torch.nn.functional.conv2d(x, torch.ones(2, 2, 3, 3, dtype=torch.float16), padding=1).sum().item()
        torch.nn.functional.interpolate(x, scale_factor=2.0, mode="bilinear").softmax(-1)
        return True
    except RuntimeError:
        return False


def place(model: Any, device: str | None = None, dtype: str | None = None, *, cast: bool = True) -> Any:
    """``model`` on ``device`` in precision ``dtype`` (see :func:`resolve_device` /
    :func:`resolve_dtype`), in eval mode. ``cast=False`` keeps float32 weights (models run under
    :func:`autocast`)."""
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    model.to(dev)
    if cast:
        model.to(dt)
    return model.eval()


def model_dtype(model: Any) -> Any:
    """The precision of a model's floating-point weights (float32 for a model without any)."""
    import torch

    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


def _model_device(model: Any) -> Any:
    for p in model.parameters():
        return p.device
    import torch

    return torch.device("cpu")


def to_model(obj: Any, model: Any) -> Any:
    """``obj`` (a tensor, or tensors in dicts, lists, tuples, a ``BatchEncoding``) ready for
    ``model``: on its device; floating tensors in its precision, others only moved. Anything that
    is not a tensor is returned as it is."""
    return _convert(obj, _model_device(model), model_dtype(model))


def to_cpu_float(obj: Any, device: Any = "cpu") -> Any:
    """Floating tensors in ``obj`` (a tensor, a ``ModelOutput``, dicts, lists, tuples) as float32
    on ``device`` (default the CPU); other tensors moved there."""
    import torch

    return _convert(obj, torch.device(device) if device is not None else None, torch.float32)


def _convert(obj: Any, device: Any, dtype: Any) -> Any:
    import torch

    if isinstance(obj, torch.Tensor):
        if obj.is_floating_point():
            return obj.to(device=device, dtype=dtype)
        return obj if device is None else obj.to(device)
    if isinstance(obj, Mapping):
        items = {k: _convert(v, device, dtype) for k, v in obj.items()}
        try:  # keep the container's type (BatchEncoding, ModelOutput, OrderedDict)
            out = type(obj)(items)  # type: ignore[call-arg]
            if out.keys() == items.keys():
                return out
        except (TypeError, ValueError):
            pass
        try:
            return type(obj)(**items)
        except (TypeError, ValueError):
            return items
    if isinstance(obj, list):
        return [_convert(v, device, dtype) for v in obj]
    if isinstance(obj, tuple):
        values = [_convert(v, device, dtype) for v in obj]
        return type(obj)(*values) if hasattr(obj, "_fields") else tuple(values)
    return obj


@contextlib.contextmanager
def autocast(device: Any, dtype: Any) -> Iterator[None]:
    """Mixed precision on ``device`` (a torch device) in ``dtype`` (a torch dtype); nothing for
    float32."""
    import torch

    if dtype == torch.float32:
        yield
        return
    with torch.autocast(device_type=torch.device(device).type, dtype=dtype):
        yield
