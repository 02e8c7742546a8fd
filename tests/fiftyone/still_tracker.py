"""A deterministic tracking function for tests in child processes: the object stays where it was
(OpenCV's MIL samples at random, so two runs of it can differ by a pixel)."""

import autoannotate as aa


class Still:
    spec = aa.TrackingFunctionSpec(supported_shape_types=("rectangle",))
    model_version = "still"

    def init_tracking_state(self, context, pp_image, shape):
        return shape

    def track(self, context, pp_image, state):
        return state


def create() -> Still:
    return Still()
