"""Detector names and default settings, each defined once. Light tier (standard library).

The API (:func:`~fer_edge.detect.finder.build_detector`, ``FaceFinder``,
``Predictor.analyze``), the demo (``DemoConfig``) and ``fer-edge serve`` (which takes the demo's
options) all refer to these. Where the demo's value differs from the API's, both are here and
the comment says why: the API gets any frame, usually a single photo, with no next call to
reuse work for; the demo gets video, where a face found in one detection round is there in the
next.
"""

from __future__ import annotations

from pathlib import Path

#: the package's model files (the vendored BlazeFace models, ``face_crops.json``)
ASSETS = Path(__file__).resolve().parent.parent / "assets"

#: the default detector (``--detector auto``): the best one measured in benchmarks/README.md
AUTO = "blazeface-full+refine"
#: the ``--detector`` default of the demo, serve, enroll and ``evaluate --people`` (= :data:`AUTO`)
DETECTOR = "auto"
#: suffix of a detector name that adds the second, upright pass
#: (:class:`~fer_edge.detect.refine.RefinedDetector`)
REFINE = "+refine"
#: the detector names ``--detector`` takes (besides a path to a YuNet ``.onnx``)
DETECTORS = ("auto", "blazeface-full", "blazeface-short", "haar", "blazeface-full+refine",
             "blazeface-short+refine", "haar+refine")

#: default minimum face score of BlazeFace (MediaPipe's own threshold for these models)
DEFAULT_SCORE = 0.5
#: default minimum face score of YuNet
YUNET_SCORE = 0.7
#: Haar's default smallest face, pixels of the original frame (its historical demo default;
#: BlazeFace and YuNet keep every size by default)
HAAR_MIN_SIZE = 64
#: Haar and YuNet detect on the frame shrunk to this width (0 = full size); BlazeFace
#: letterboxes to its own input instead
DETECT_WIDTH = 320

#: "+refine" detectors, API: calls a face's second pass is reused for. 0 = every call refines
#: every face: each call may be another photo, and a second pass moved onto a different
#: photo's face would be wrong. The demo uses it for photos too (``--image``).
REFINE_REUSE = 0
#: ... demo on video (``--refine-reuse``): a face's second pass is reused for 2 detection
#: rounds (moved with its box), a third of the cost of refining every round. Not the API's
#: default: it would move second passes between unrelated photos given to ``analyze()``.
VIDEO_REFINE_REUSE = 2

#: tiled detection of small faces in large frames, API: "off" (the frame as given, one pass)
TILES = "off"
#: ... demo (``--detect-tiles``): "auto" (tiles on frames from 960 px whose faces are small)
DEMO_TILES = "auto"
