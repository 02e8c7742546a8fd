"""autoannotate: label images with models inside the tools you already use.

The core protocol (after CVAT SDK's auto-annotation layer): a *detection function* has a ``spec``
(its labels) and ``detect(context, image)`` returning shapes with scores; an *interactive
function* turns clicks and boxes into masks. Drivers validate every output, map labels by name
onto a target's labels, and record per-image failures without stopping.

Only numpy, Pillow and tqdm are imported here; models load on first use.
"""

from . import specs
from .driver import ImageResult, iter_annotations
from .errors import (
    AutoAnnotateError,
    BadFunctionError,
    BadParameterError,
    ImageLoadError,
    LabelMappingError,
    NoLabelsMatchError,
    WeightsNotFoundError,
)
from .images import load_image
from .interface import (
    DetectionFunction,
    DetectionFunctionContext,
    InteractiveFunction,
    InteractiveFunctionContext,
    InteractivePrompt,
    SegmentationResult,
    TrackableShape,
    TrackingFunction,
    TrackingFunctionContext,
    TrackingFunctionShapeContext,
    TrackingFunctionSpec,
    TrackLost,
)
from .loading import load_function, parse_param, parse_params
from .mapping import LabelMapping, TargetAttribute, TargetLabel, target_labels_from_names
from .refine import BoxRefiner
from .report import AnnotateReport, ImageFailure
from .routing import ReviewThresholds, Router
from .run import RunStore, Sink, annotate_images
from .shapes import (
    AttributeValue,
    Shape,
    attribute_vals_from_dict,
    keypoint,
    mask,
    points,
    polygon,
    polyline,
    rectangle,
    shape,
    skeleton,
    tag,
)
from .specs import *  # noqa: F403 - the spec classes and builders (specs.__all__)
from .tracking import Track, detect_and_track, track_shapes
from .validation import validate_shapes

__version__ = "0.1.0"

__all__ = [
    "ImageResult",
    "iter_annotations",
    "NoLabelsMatchError",
    "AutoAnnotateError",
    "BadFunctionError",
    "BadParameterError",
    "ImageLoadError",
    "LabelMappingError",
    "WeightsNotFoundError",
    "load_image",
    "DetectionFunction",
    "DetectionFunctionContext",
    "InteractiveFunction",
    "InteractiveFunctionContext",
    "InteractivePrompt",
    "SegmentationResult",
    "TrackableShape",
    "TrackingFunction",
    "TrackingFunctionContext",
    "TrackingFunctionShapeContext",
    "TrackingFunctionSpec",
    "TrackLost",
    *specs.__all__,
    "load_function",
    "parse_param",
    "parse_params",
    "LabelMapping",
    "TargetAttribute",
    "TargetLabel",
    "target_labels_from_names",
    "BoxRefiner",
    "AnnotateReport",
    "ImageFailure",
    "ReviewThresholds",
    "Router",
    "RunStore",
    "Sink",
    "annotate_images",
    "AttributeValue",
    "Shape",
    "attribute_vals_from_dict",
    "keypoint",
    "mask",
    "points",
    "polygon",
    "polyline",
    "rectangle",
    "shape",
    "skeleton",
    "tag",
    "Track",
    "detect_and_track",
    "track_shapes",
    "validate_shapes",
    "__version__",
]
