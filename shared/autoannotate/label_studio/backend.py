"""The ML backend's protocol answers, independent of the web framework: ``/health``, ``/setup``
and ``/predict`` (which goes to pre-annotation, click-to-mask or video), the labeling configs'
controls (cached per config) and the open-vocabulary functions made for them. ``app.py`` puts it
behind Label Studio's HTTP protocol.

The work is done elsewhere: pre-annotation in ``preannotate.py`` (the driver, one label mapping
per control tag), click-to-mask with encode-ahead and prompt parsing in ``interactive.py``,
predictions built in ``predictions.py``, videos in ``video.py``.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..driver import check_threshold
from ..encodings import EncodingCache
from ..errors import AutoAnnotateError
from ..interface import (
    DetectionFunction,
    InteractiveFunction,
    OpenVocabulary,
    TrackingFunction,
    model_version,
)
from ..loading import adapt_function
from ..settings import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_KEY_FRAME_INTERVAL,
    DEFAULT_MAX_VIDEO_BYTES,
    DEFAULT_NUM_WORKERS,
    DEFAULT_TRACK_FRAMES,
    DEFAULT_VIDEO_CACHE_BYTES,
)
from .config import (
    Control,
    ControlConflictError,
    LabelConfigError,
    config_vocabulary,
    for_config,
    map_controls,
    parse_config,
)
from .fetch import ImageFetcher, LabelStudioCheck
from .interactive import InteractiveSession
from .preannotate import pre_annotate
from .responses import (
    BadRequest,
    empty_prediction,
    nothing_found,
    prediction_version,
)
from .video import pre_annotate_video, track_drawn_boxes
from .video_cache import VideoCache

log = logging.getLogger(__name__)

__all__ = ["Backend", "BadRequest", "LabelStudioUnusable"]


@dataclass
class Backend:
    """``function``: a detection function (or None); ``interactive``: an interactive function (or
    None). At least one is needed."""

    function: DetectionFunction | None = None
    interactive: InteractiveFunction | None = None
    fetcher: ImageFetcher = field(default_factory=ImageFetcher)
    cache: EncodingCache = field(default_factory=EncodingCache)
    conf_threshold: float | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    num_workers: int = DEFAULT_NUM_WORKERS
    tracker: TrackingFunction | None = None
    track_frames: int = DEFAULT_TRACK_FRAMES
    key_frame_interval: int = DEFAULT_KEY_FRAME_INTERVAL
    max_video_bytes: int = DEFAULT_MAX_VIDEO_BYTES
    #: Fetched videos kept on disk within a byte budget: a task's video is fetched once.
    video_cache: VideoCache = field(default_factory=lambda: VideoCache(DEFAULT_VIDEO_CACHE_BYTES))
    #: Store a prediction with no regions for tasks where nothing was found (default: store none,
    #: so "Retrieve predictions" can run again on them).
    empty_predictions: bool = False
    #: Encode a task's image for click-to-mask in the background when its pre-annotation is asked
    #: (Label Studio asks when the task is opened), so the first click costs only the decoder.
    encode_ahead: bool = True
    #: Also encode the next ``look_ahead`` tasks of the project (by task id) when a task is opened
    #: or clicked in (Label Studio asks for a task's pre-annotation on opening only when it has no
    #: prediction yet); needs the Label Studio URL and token. 0: only the opened task.
    look_ahead: int = 2
    #: For an open-vocabulary ``function`` (one with ``for_classes``): the user's ``prompts`` (a
    #: dict, maybe empty, or ``"class=prompt|prompt, ..."``) for each labeling config's labels,
    #: which it then searches (:meth:`detector`); None: it searches the classes it was made with.
    vocabulary: Any = field(default_factory=dict)
    _configs: dict[str, list[Control]] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _checked: tuple[LabelStudioCheck, float] | None = field(default=None, repr=False)
    _vocab: dict = field(default_factory=dict, repr=False)  # open-vocabulary functions per label set

    def __post_init__(self) -> None:
        if self.function is None and self.interactive is None and self.tracker is None:
            raise ValueError("the backend needs a detection, interactive or tracking function")
        # functions written for CVAT SDK run as they are, however they were handed over
        self.function, self.interactive, self.tracker = (
            None if f is None else adapt_function(f) for f in (self.function, self.interactive, self.tracker)
        )
        self.conf_threshold = check_threshold(self.conf_threshold)
        self._session = (
            InteractiveSession(self.interactive, self.fetcher, self.cache) if self.interactive is not None else None
        )

    @property
    def model_version(self) -> str:
        """The ``model_version`` of image pre-annotations (:func:`prediction_version`: the
        detection function and its threshold, the same as ``label-studio annotate`` writes);
        without a detection function, the interactive or tracking function's version."""
        if self.function is None:
            return self.video_version if self.interactive is None else model_version(self.interactive)
        return prediction_version(self.function, conf_threshold=self.conf_threshold)

    @property
    def video_version(self) -> str:
        """The ``model_version`` of whole-video pre-annotations: detector, threshold and tracker."""
        return prediction_version(self.function, conf_threshold=self.conf_threshold, tracker=self.tracker)

    def _version(self, controls: list[Control]) -> str:
        """:attr:`model_version` for a labeling config's image controls: an open-vocabulary
        function's version names the labels it searched (:meth:`detector`)."""
        if self.function is None or not controls:
            return self.model_version
        return prediction_version(self.detector(controls), conf_threshold=self.conf_threshold)

    def _video_version(self, controls: list[Control]) -> str:
        """:attr:`video_version` for a labeling config's video controls."""
        if self.function is None or not controls:
            return self.video_version
        return prediction_version(self.detector(controls), conf_threshold=self.conf_threshold, tracker=self.tracker)

    def label_studio_check(self, max_age: float = 60.0, timeout: float = 2.0) -> LabelStudioCheck:
        """Is Label Studio reachable with our token? A good answer is reused for ``max_age``
        seconds; a bad one is asked again each time (Label Studio gives /setup 3 s in all).
        Every change of state is logged, a bad state as a warning with what to fix."""
        now = time.monotonic()
        with self._lock:
            cached = self._checked
        if cached is not None and cached[0].state == "ok" and now - cached[1] < max_age:
            return cached[0]
        check = self.fetcher.check_label_studio(timeout=timeout)
        with self._lock:
            previous, self._checked = self._checked, (check, now)
        if previous is None or previous[0] != check:
            (log.info if check.state == "ok" else log.warning)("Label Studio connection: %s", check.message)
        return check

    # -- protocol -------------------------------------------------------------------------

    def health(self) -> dict:
        """Answers at once (Label Studio allows 1 s): the Label Studio connection is the last
        check's result (made at start and on every /setup), not a new call."""
        checked = self._checked
        return {
            "status": "UP",
            "model_class": "autoannotate",
            "model_version": self.model_version,
            "detection": model_version(self.function) if self.function else None,
            "interactive": model_version(self.interactive) if self.interactive else None,
            "tracker": model_version(self.tracker) if self.tracker else None,
            "video_model_version": self.video_version if self.tracker else None,
            "empty_predictions": self.empty_predictions,
            "label_studio": checked[0].as_dict() if checked else {"state": "unchecked"},
            "cache": {
                "items": len(self.cache),
                "bytes": self.cache.nbytes,
                "max_bytes": self.cache.max_bytes,
                "hits": self.cache.stats.hits,
                "encodings": self.cache.stats.computed,
                "evicted": self.cache.stats.evicted,
            },
        }

    def controls(self, label_config: str) -> dict[str, list[Control]]:
        """Usable controls per use: ``detection`` (image pre-annotation), ``interactive`` (click
        to mask), ``video`` (VideoRectangle). Cached per config, the last 64 configs kept."""
        key = hashlib.sha1(label_config.encode()).hexdigest()
        with self._lock:
            if key in self._configs:
                return self._configs[key]  # type: ignore[return-value]
        parsed = parse_config(label_config)
        images = [c for c in parsed if c.object_tag == "Image"]
        videos = [c for c in parsed if c.object_tag == "Video"]
        out: dict[str, list[Control]] = {"detection": [], "interactive": [], "video": []}
        errors: list[str] = []
        notes: list[str] = []  # what this config does not get, not why it fails
        if self.function is not None and images:
            try:
                out["detection"] = map_controls(self.detector(images).spec, images)
            except ControlConflictError:
                raise  # a conflict is never hidden behind other usable controls
            except LabelConfigError as e:
                errors.append(str(e))
        if self.interactive is not None and images:
            try:
                out["interactive"] = map_controls(None, images, interactive=True)
            except LabelConfigError as e:
                # with a detection function, its mismatch is what to fix: clicks are only offered
                # (Label Studio's "Interactive preannotations" may well be off), so never the cause
                (notes if self.function is not None else errors).append(str(e))
        if videos and self.tracker is not None:
            mapped: dict[str, Control] = {}
            if self.function is not None:
                try:
                    mapped = {c.name: c for c in map_controls(self.detector(videos).spec, videos)}
                except ControlConflictError:
                    raise
                except LabelConfigError as e:
                    errors.append(str(e))
            # drawn boxes can be tracked whatever their labels; whole videos need a mapping
            out["video"] = [mapped.get(c.name, c) for c in videos]
        elif videos:
            errors.append("video tasks need a tracking function (AUTOANNOTATE_TRACKER)")
        if not any(out.values()):
            raise LabelConfigError(
                " ".join(errors or notes) or "the labeling config has no control tag this backend can fill"
            )
        for reason in errors:  # what this config does not get, logged once per config
            log.warning("labeling config %s: %s", key[:8], reason)
        for reason in notes:
            log.info("labeling config %s: %s", key[:8], reason)
        with self._lock:
            self._configs[key] = out  # type: ignore[assignment]
            while len(self._configs) > 64:  # callers decide what configs arrive: keep memory bounded
                self._configs.pop(next(iter(self._configs)))
        return out

    def setup(self, payload: Mapping[str, Any]) -> dict:
        schema = payload.get("schema") or payload.get("label_config")
        if not isinstance(schema, str) or not schema.strip():
            raise BadRequest("setup needs the labeling config in 'schema'")
        controls = self.controls(schema)
        check = self.label_studio_check()
        if not check.usable:
            raise LabelStudioUnusable(check.message)
        video_only = bool(controls["video"]) and not controls["detection"] and not controls["interactive"]
        return {
            "model_version": self._video_version(controls["video"])
            if video_only
            else self._version(controls["detection"]),
            "label_studio": check.as_dict(),
            "controls": {
                "detection": [c.name for c in controls["detection"]],
                "interactive": [c.name for c in controls["interactive"]],
                "video": [c.name for c in controls["video"]],
            },
        }

    def predict(self, payload: Mapping[str, Any]) -> dict:
        tasks = payload.get("tasks")
        if not isinstance(tasks, list) or not all(isinstance(t, Mapping) for t in tasks):
            raise BadRequest("predict needs 'tasks': a list of task objects")
        label_config = payload.get("label_config")
        if not isinstance(label_config, str) or not label_config.strip():
            raise BadRequest("predict needs the project's 'label_config'")
        params = payload.get("params") or {}
        context = params.get("context") if isinstance(params, Mapping) else None
        controls = self.controls(label_config)
        if context:
            return self._answer_prompt(tasks, context, controls, payload.get("project"))
        if controls["video"] and tasks and self._is_video_task(tasks[0], controls["video"]):
            results = [
                pre_annotate_video(
                    t,
                    controls["video"],
                    detector=self.detector(controls["video"]),
                    tracker=self._tracker(),
                    fetcher=self.fetcher,
                    key_frame_interval=self.key_frame_interval,
                    conf_threshold=self.conf_threshold,
                    max_video_bytes=self.max_video_bytes,
                    model_version=self._video_version(controls["video"]),
                    video_cache=self.video_cache,
                )
                for t in tasks
            ]
        else:
            # One task is a person opening it (a bulk "Retrieve predictions" sends many): encode its
            # image for clicks too, after the pre-annotation is done, reusing the decoded image.
            opened = len(tasks) == 1 and self.encode_ahead and self.interactive is not None
            loaded: dict[str, Any] | None = {} if opened else None
            results = self.pre_annotate(tasks, controls["detection"], loaded)
            if opened:
                self._encode_later(tasks[0], controls["interactive"], loaded or {})
                self._encode_next(payload.get("project"), tasks[0], controls["interactive"])
        return {"results": [self._stored(r) for r in results]}

    def _stored(self, prediction: dict) -> dict:
        """A pre-annotation as Label Studio should store it: a prediction with no regions becomes
        :func:`nothing_found` (nothing stored) unless ``empty_predictions``."""
        if self.empty_predictions or prediction.get("result") != []:
            return prediction
        return nothing_found(prediction.get("model_version", self.model_version))

    def _answer_prompt(
        self, tasks: list, context: Any, controls: dict[str, list[Control]], project: Any = None
    ) -> dict:
        """Interactive requests: a drawn video box to track, or clicks and boxes to segment."""
        if controls["video"] and tasks and self._is_video_task(tasks[0], controls["video"]):
            return {
                "results": [
                    track_drawn_boxes(
                        tasks[0],
                        context,
                        controls["video"],
                        tracker=self._tracker(),
                        fetcher=self.fetcher,
                        track_frames=self.track_frames,
                        max_video_bytes=self.max_video_bytes,
                        model_version=model_version(self.tracker),
                        video_cache=self.video_cache,
                    )
                ]
            }
        self._interactive()
        if not tasks:
            raise BadRequest("an interactive request needs its task")
        answer = {"results": [self.interactive_prediction(tasks[0], context, controls["interactive"])]}
        self._encode_next(project, tasks[0], controls["interactive"])  # encoded while this task is annotated
        return answer

    @staticmethod
    def _is_video_task(task: Mapping[str, Any], controls: list[Control]) -> bool:
        data = task.get("data")
        return isinstance(data, Mapping) and any(isinstance(data.get(c.value_key), str) for c in controls)

    # -- pre-annotation -------------------------------------------------------------------

    def detector(self, controls: list[Control]) -> Any:
        """The detection function for these controls: an open-vocabulary function (SAM 3, OWLv2,
        Grounding DINO: one with ``for_classes``) made to find the controls' labels, their
        ``predicted_values`` as prompts (:func:`~autoannotate.label_studio.config.for_config`;
        the model is shared, one per label set is kept); any other function as it is."""
        if self.vocabulary is None or not isinstance(self.function, OpenVocabulary):
            return self.function
        names, prompts = config_vocabulary(controls, self.vocabulary)
        key = (tuple(names), tuple(sorted((k, tuple(v)) for k, v in prompts.items())))
        with self._lock:
            found = self._vocab.get(key)
        if found is None:
            found = for_config(self.function, controls, self.vocabulary)
            with self._lock:
                self._vocab[key] = found
                while len(self._vocab) > 64:
                    self._vocab.pop(next(iter(self._vocab)))
        return found

    def pre_annotate(
        self, tasks: list[Mapping[str, Any]], controls: list[Control], loaded: dict[str, Any] | None = None
    ) -> list[dict]:
        """One prediction per task, in order (:func:`~autoannotate.label_studio.preannotate.pre_annotate`
        with this backend's function for ``controls``, threshold and batching). ``loaded``
        (optional) receives the decoded images by reference, for encode-ahead."""
        if not controls or self.function is None:
            return [empty_prediction(self.model_version) for _ in tasks]
        return pre_annotate(
            tasks,
            controls,
            function=self.detector(controls),
            fetcher=self.fetcher,
            version=self._version(controls),
            conf_threshold=self.conf_threshold,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            loaded=loaded,
        )

    # -- interactive ----------------------------------------------------------------------

    def _interactive(self) -> InteractiveSession:
        if self._session is None:
            raise BadRequest(
                "this backend has no interactive function (start it with --interactive NAME or AUTOANNOTATE_INTERACTIVE)"
            )
        return self._session

    def _tracker(self) -> TrackingFunction:
        if self.tracker is None:
            raise BadRequest("this backend has no tracker for video tasks (start it with --tracker NAME)")
        return self.tracker

    def interactive_prediction(self, task: Mapping[str, Any], context: Any, controls: list[Control]) -> dict:
        """Masks for the clicks and boxes of ``context`` (:meth:`InteractiveSession.prediction`)."""
        return self._interactive().prediction(task, context, controls)

    def _encode_later(self, task: Mapping[str, Any], controls: list[Control], loaded: Mapping[str, Any]) -> None:
        """Queue the encoding of ``task``'s image in the background (when encode-ahead is on)."""
        if self.encode_ahead and self._session is not None:
            self._session.encode_later(task, controls, loaded)

    def _encode_next(self, project: Any, task: Mapping[str, Any], controls: list[Control]) -> None:
        """Queue the encodings of the ``look_ahead`` tasks after ``task`` in its project."""
        if self.encode_ahead and self._session is not None and self.look_ahead > 0 and controls:
            self._session.encode_next(project, task, controls, self.look_ahead)

    def close(self) -> None:
        """Drop queued encodings and stop the background thread (the server is stopping)."""
        if self._session is not None:
            self._session.close()

    def wait_encode_ahead(self, timeout: float = 60.0) -> bool:
        """Wait until queued encodings are done (tests, benchmarks); False on timeout."""
        return self._session.wait(timeout) if self._session is not None else True


class LabelStudioUnusable(AutoAnnotateError):
    """The backend's Label Studio URL or token does not work (the message says which and how to fix it)."""
