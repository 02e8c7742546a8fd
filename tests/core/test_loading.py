"""load_function and the NAME=TYPE:VALUE parameter syntax."""

from __future__ import annotations

import textwrap

import pytest

import autoannotate as aa
from autoannotate.loading import checked_params, load_function, parse_param, parse_params


@pytest.mark.parametrize(
    "text, expected",
    [
        ("model_name=str:resnet50", ("model_name", "resnet50")),
        ("n=int:3", ("n", 3)),
        ("t=float:0.25", ("t", 0.25)),
        ("flag=bool:true", ("flag", True)),
        ("flag=bool:No", ("flag", False)),
        ("url=str:http://x:80/a", ("url", "http://x:80/a")),
        ("plain=hello", ("plain", "hello")),
        ("path=/a:b", ("path", "/a:b")),
    ],
)
def test_parse_param(text, expected):
    assert parse_param(text) == expected


@pytest.mark.parametrize("text", ["noequals", "=int:3", "2x=int:3", "n=int:three", "b=bool:maybe", "f=float:"])
def test_parse_param_errors(text):
    with pytest.raises(aa.BadParameterError):
        parse_param(text)


def test_untyped_values_take_the_type_their_parameter_declares(tmp_path):
    f = tmp_path / "typed_function.py"
    f.write_text(
        "def create(threshold: float = 0.5, count=3, flag: bool = False, name: str = 'x', size=None):\n"
        "    return dict(threshold=threshold, count=count, flag=flag, name=name, size=size)\n"
    )
    got = load_function(str(f), **parse_params(["threshold=0.3", "count=7", "flag=yes", "name=12", "size=4"]))
    assert got == {"threshold": 0.3, "count": 7, "flag": True, "name": "12", "size": "4"}
    assert type(got["name"]) is str and type(got["size"]) is str
    with pytest.raises(aa.BadParameterError, match="not a valid float"):
        load_function(str(f), **parse_params(["threshold=high"]))


def test_a_create_may_declare_the_options_of_its_kwargs(tmp_path):
    """``create.kwargs_parameters(params)`` types the untyped values of options ``**kwargs`` takes
    (here by the model ``params`` name); an option it does not declare stays a string."""
    f = tmp_path / "kwargs_function.py"
    f.write_text(
        "import inspect\n"
        "def create(model='a', **kwargs):\n"
        "    return kwargs\n"
        "def options(params):\n"
        "    kind = inspect.Parameter.KEYWORD_ONLY\n"
        "    thresh = 0.5 if params.get('model', 'a') == 'a' else 1\n"
        "    return {'thresh': inspect.Parameter('thresh', kind, default=thresh)}\n"
        "create.kwargs_parameters = options\n"
    )
    assert load_function(str(f), **parse_params(["thresh=0.3", "other=2"])) == {"thresh": 0.3, "other": "2"}
    assert load_function(str(f), **parse_params(["model=b", "thresh=7"])) == {"thresh": 7}


def test_params_are_checked_and_typed_as_create_would_receive_them_without_calling_it(tmp_path):
    """``checked_params``: what the FiftyOne form and the run record use; the ``kwargs_parameters``
    hook types ``**kwargs`` options too, and ``create`` itself never runs."""
    f = tmp_path / "never_built.py"
    f.write_text(
        "import inspect\n"
        "def create(size: int = 1, **kwargs):\n"
        "    raise AssertionError('built')\n"
        "def options(params):\n"
        "    return {'thresh': inspect.Parameter('thresh', inspect.Parameter.KEYWORD_ONLY, default=0.5)}\n"
        "create.kwargs_parameters = options\n"
    )
    assert checked_params(str(f), parse_params(["size=3", "thresh=0.3"])) == {"size": 3, "thresh": 0.3}
    assert checked_params("yolox", parse_params(["max_detections=10"])) == {"max_detections": 10}
    with pytest.raises(aa.BadParameterError, match=r"yolox .*unexpected keyword argument 'bogus'.*max_detections: int"):
        checked_params("yolox", parse_params(["bogus=1"]))
    with pytest.raises(aa.BadParameterError, match="not a valid int"):
        checked_params("yolox", parse_params(["max_detections=many"]))
    assert checked_params("yolox", None) == {}


def test_repeated_param():
    with pytest.raises(aa.BadParameterError, match="given twice"):
        parse_params(["a=int:1", "a=int:2"])


FUNCTION_FILE = textwrap.dedent(
    """
    import autoannotate as aa

    class Fn:
        def __init__(self, size):
            self.size = size
            self.spec = aa.DetectionFunctionSpec(labels=[aa.label_spec("thing", 0, type="rectangle")])

        def detect(self, context, image):
            return [aa.rectangle(0, [0, 0, self.size, self.size], score=1.0)]

    def create(size: int = 2):
        return Fn(size)
    """
)

MODULE_FUNCTION = textwrap.dedent(
    """
    import autoannotate as aa
    spec = aa.DetectionFunctionSpec(labels=[aa.label_spec("thing", 0)])
    def detect(context, image):
        return [aa.tag(0, score=0.5)]
    """
)


def test_load_from_file_with_params(tmp_path):
    f = tmp_path / "my_function.py"
    f.write_text(FUNCTION_FILE)
    fn = load_function(str(f), size=7)
    assert fn.size == 7 and fn.spec.label_names == ["thing"]
    with pytest.raises(aa.BadParameterError, match="unexpected keyword argument 'colour'.*size: int = 2"):
        load_function(str(f), colour="red")


def test_a_function_file_has_the_same_name_in_every_process(tmp_path):
    """A file's module name is the model_version of a function that declares none (CVAT's): runs
    resumed in another process and Label Studio re-runs match on it."""
    import os
    import subprocess
    import sys

    f = tmp_path / "my_function.py"
    f.write_text(MODULE_FUNCTION)
    code = f"from autoannotate.loading import import_module_or_file; print(import_module_or_file({str(f)!r}).__name__)"
    names = {
        subprocess.run(
            [sys.executable, "-c", code], env={**os.environ, "PYTHONHASHSEED": seed}, capture_output=True, text=True
        ).stdout.strip()
        for seed in ("1", "2")
    }
    assert len(names) == 1 and names.pop().startswith("my_function_")


def test_a_module_with_spec_and_detect_is_a_function(tmp_path, monkeypatch):
    (tmp_path / "modfn.py").write_text(MODULE_FUNCTION)
    monkeypatch.syspath_prepend(str(tmp_path))
    fn = load_function("modfn")
    assert isinstance(fn, aa.DetectionFunction)
    with pytest.raises(aa.BadParameterError, match="no create"):
        load_function("modfn", x=1)


def test_unknown_function_names():
    with pytest.raises(aa.BadFunctionError, match="not a predefined function"):
        load_function("no_such_function_anywhere")
    with pytest.raises(aa.BadFunctionError, match="does not exist"):
        load_function("/nowhere/fn.py")


def test_importing_the_package_and_function_modules_loads_no_framework():
    import subprocess
    import sys

    code = (
        "import sys, autoannotate, autoannotate.cli\n"
        "from autoannotate.registry import predefined_functions\n"
        "assert len(predefined_functions()) == 19\n"
        "heavy = ['torch', 'torchvision', 'onnxruntime', 'cv2', 'segment_anything', 'fiftyone', 'label_studio_sdk']\n"
        "print([m for m in heavy if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# -- a role's kind: checked by load_function, from the record or from what the function provides --


def test_a_registered_function_of_another_kind_is_refused_before_it_is_built(monkeypatch):
    import autoannotate.functions.opencv_tracker as tracker_module
    from autoannotate.registry import refresh

    refresh()
    built = []
    monkeypatch.setattr(tracker_module, "create", lambda **kw: built.append(kw))
    refresh()  # the registry holds the patched create
    with pytest.raises(aa.BadFunctionError) as e:
        load_function("opencv_tracker", "detection")
    assert str(e.value).startswith(
        "'opencv_tracker' is a tracking function, but a detection function is needed here (one with spec and "
        "detect()); `autoannotate functions --kind detection` lists them: "
    )
    assert "yolox" in str(e.value) and "grabcut" not in str(e.value) and built == []
    monkeypatch.undo()
    refresh()  # the registry forgets the patched create
    with pytest.raises(aa.BadFunctionError, match="'yolox' is a detection function, but an interactive function"):
        load_function("yolox", "interactive")
    assert load_function("grabcut", "interactive") is not None


def test_a_module_or_file_is_checked_for_what_it_provides(tmp_path):
    f = tmp_path / "my_tracker.py"
    f.write_text(
        textwrap.dedent(
            """
            from autoannotate.interface import TrackingFunctionSpec
            spec = TrackingFunctionSpec(supported_shape_types=("rectangle",))
            def init_tracking_state(context, pp_image, shape):
                return shape
            def track(context, pp_image, state):
                return None
            """
        )
    )
    with pytest.raises(aa.BadFunctionError) as e:
        load_function(str(f), "detection")
    assert str(e.value).startswith(f"{str(f)!r} is a tracking function, but a detection function is needed here")
    assert load_function(str(f), "tracking").track is not None
    g = tmp_path / "nothing_kind.py"
    g.write_text(
        "def create(kind='x'):\n    class F:\n        def detect(self, c, i):\n            return []\n    return F()\n"
    )
    with pytest.raises(aa.BadFunctionError, match="is not a detection, interactive or tracking function, but a det"):
        load_function(str(g), "detection", kind="y")  # the role is positional-only: kind= goes to create()
    assert load_function(str(g), kind="y").detect  # no role: anything goes


def test_functions_lists_the_functions_of_one_kind(capsys):
    from autoannotate.cli import main
    from autoannotate.registry import names

    assert main(["functions", "--kind", "tracking"]) == 0
    listed = [line for line in capsys.readouterr().out.splitlines() if line and not line.startswith(" ")]
    assert listed == names("tracking") and "opencv_tracker" in listed
