"""What users see of the SAM-family ``create`` functions (``-p``, the FiftyOne form,
``autoannotate functions``): their parameters in order, with types and defaults, the errors of a
plain function, and ``-p`` values typed from the declared types. No model is built."""

import inspect

import pytest

from autoannotate.errors import BadParameterError
from autoannotate.functions import edgetam, edgetam_video, sam, sam2, sam2_video, sam_tracker
from autoannotate.loading import Untyped, describe_parameters, load_function, typed_params

LOADING = "checkpoint: str | None = None, pretrained: bool = True, device: str | None = None"
SIGNATURES = {
    sam: (f"model_type: str = 'vit_b', {LOADING}, multimask: str = 'auto', dtype: str | None = None", "SamFunction"),
    sam2: (
        f"size: str = 'tiny', {LOADING}, multimask: str = 'auto', dtype: str | None = None",
        "TransformersSamFunction",
    ),
    edgetam: (f"{LOADING}, multimask: str = 'auto', dtype: str | None = None", "TransformersSamFunction"),
    sam_tracker: (
        f"model_type: str = 'vit_b', {LOADING}, min_pixels: int = 16, dtype: str | None = None",
        "SamTracker",
    ),
    sam2_video: (
        f"size: str = 'tiny', {LOADING}, min_score: float = 0.5, min_pixels: int = 16, dtype: str | None = None",
        "VideoSamTracker",
    ),
    edgetam_video: (
        f"{LOADING}, min_score: float = 0.5, min_pixels: int = 16, dtype: str | None = None",
        "VideoSamTracker",
    ),
}


@pytest.mark.parametrize("module", list(SIGNATURES), ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_create_parameters_are_what_users_see(module):
    parameters, returns = SIGNATURES[module]
    assert describe_parameters(module.create) == f"Parameters: {parameters}"
    signature = inspect.signature(module.create)
    assert signature.return_annotation == returns
    assert all(p.kind is p.POSITIONAL_OR_KEYWORD for p in signature.parameters.values())
    assert module.create.__name__ == "create" and module.create.__doc__.strip()
    with pytest.raises(TypeError, match=r"^create\(\) got an unexpected keyword argument 'colour'$"):
        module.create(colour="red")


def test_unknown_names_are_refused_with_the_parameters():
    with pytest.raises(BadParameterError) as e:
        load_function("edgetam_video", colour="red")
    assert "got an unexpected keyword argument 'colour'" in str(e.value)
    assert f"Parameters: {SIGNATURES[edgetam_video][0]}" in str(e.value)


def test_p_values_take_the_declared_types():
    given = {
        k: Untyped(v) for k, v in {"min_score": "0.25", "min_pixels": "3", "pretrained": "false", "size": "s"}.items()
    }
    assert typed_params(sam2_video.create, given) == {
        "min_score": 0.25,
        "min_pixels": 3,
        "pretrained": False,
        "size": "s",
    }


def test_positional_arguments_bind_in_the_declared_order():
    with pytest.raises(BadParameterError, match="unknown SAM 2.1 size 'huge'"):
        sam2.create("huge")
    with pytest.raises(BadParameterError, match="unknown SAM model_type 'vit_x'"):
        sam_tracker.create("vit_x", None, False)
    with pytest.raises(TypeError, match="takes from 0 to 5 positional arguments but 6 were given|too many positional"):
        edgetam.create(None, False, None, "auto", None, "extra")


def test_a_declaration_must_name_exactly_the_typed_parameters():
    from typing import TypedDict

    from autoannotate.signatures import declare

    class Typed(TypedDict, total=False):
        checkpoint: str | None
        device: str | None

    with pytest.raises(TypeError, match=r"\['checkpoint', 'dtype'\] do not match the typed parameters"):
        declare({"checkpoint": None, "dtype": None}, Typed)
    created = declare({"device": "cpu", "checkpoint": None}, Typed)(lambda **params: params)
    assert created("x") == {"device": "x", "checkpoint": None}
    assert str(inspect.signature(created)) == "(device: str | None = 'cpu', checkpoint: str | None = None)"
