"""The calibration method: a per-person linear correction of the model's logits. Light tier
(numpy only).

Measured on ``tfeid_dev`` (the method table in ``benchmarks/README.md``, made by
``python benchmarks/personal.py --study``): the model's log-probabilities ``z0`` are kept and a
correction learned from the person's shots is added, for the classes the person enrolled only
(the others fall back to the model):

    v = (emb - mean) / std - anchor            # standardised with FER-2013 stats, minus the
                                               #   person's own neutral face (0 if not enrolled)
    x = v / max(|v|, sqrt(D))                  # (|v| alone when no neutral is enrolled)
    z = z0 + enrolled * (x @ W + b)            # W: (D, C), b: (C,)
    p = (1 - s) * softmax(z0) + s * softmax(z) # s: the profile's share (below)

``W`` and ``b`` are fitted by cross-entropy on the shots, ``b`` (a per-person logit bias) free
and ``W`` ridge-regularised, i.e. shrunk toward the plain model (``W = 0``) with a strength
that falls as the shots per class grow (``ridge / shots``). Then a cosine prototype term is
folded into ``W``: each enrolled class's mean shot feature (unit length, centred over the
enrolled classes) times ``proto * shots / (shots + 1) / PROTO_TEMP``, so it grows with the
shots. The neutral anchor makes ``x`` the *change* of this face from the person's neutral face
(what an expression is), not the person's identity; the norm floor keeps a face near the
person's neutral face from getting a unit-length noise feature. Each shot is used with its
mirror image and six small shifts/zooms. ``W`` is fitted in the dual (``W = X.T @ A``), so
fitting costs O(n^2 C) for n shot variants, not O(D^2).

The result is not used alone: it is averaged with the model's own probabilities (a linear
opinion pool). Far from the person's shots the profile's share is :data:`SHARE` = 1/3; it
rises to 1 on a face as close to one of the shots as that shot's own mirror image and small
shifts are (a Gaussian in the distance to the nearest shot, its width :data:`LOCAL_WIDTH`
times the median distance of the shots' variants from their shot, measured at enrolment):

    s = SHARE + (1 - SHARE) * exp(-d^2 / (2 * width^2))   # d: to the nearest shot
    p = (1 - s) * softmax(z0) + s * softmax(z)

A correction is fitted on one performance of each expression and extrapolates linearly from
it; on the person's other performances it can overrule a model that was right, so there the
profile changes the answer only where the model's own top-two margin is smaller than half the
profile's opposite margin; on a face like the ones it was fitted on it is trusted fully.
Distances are measured on the features projected to :data:`LOCAL_DIMS` dimensions by a fixed
random count sketch (:func:`projection`), so a profile stores 128 numbers per shot, not 2,048.
Measured on ``tfeid_dev`` with the default model of 2026-12-06: the full correction made 6 of
14 people worse across performance types, the worst by 13.9 pp; the fixed pool none but it
gained less (59.2 % vs 59.8 %); the local share 60.9 %, 2 people worse by at most 2.8 pp
(each person's three profiles pooled; one profile on its own: 4 of 42 more than 5 pp worse,
the worst -7.7 pp).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import cv2
import numpy as np

#: ridge strength for one shot per class (divided by the shots per class)
RIDGE = 0.1
#: anchored features are divided by max(norm, NORM_FLOOR * sqrt(D)), not by their norm, so a
#: face close to the person's neutral face keeps a small feature (and the model's answer)
#: instead of a noise direction blown up to unit length. sqrt(D) is the expected norm of a
#: standardised embedding (FER-2013 statistics: unit variance per dimension).
NORM_FLOOR = 1.0
#: weight of the cosine prototype term (times shots / (shots + 1)), and its temperature
PROTO = 0.3
PROTO_TEMP = 0.1
#: the profile's share of the vote: personalised = (1 - SHARE) * model + SHARE * corrected
#: probabilities. 1/3: the profile has half the model's say (it flips the model's answer only
#: where the model's top-two margin is under half the profile's opposite margin).
SHARE = 1.0 / 3.0
#: the local share's width, in units of the median distance of the shots' variants (mirror,
#: shifts, zooms) from their shot: 1 = "as close as a shot's own small shifts"; 0 = the
#: fixed pool (the share is SHARE everywhere)
LOCAL_WIDTH = 1.0
#: dimensions of the random projection (a count sketch) the local share measures distances in,
#: and its seed (NumPy's legacy RandomState stream, frozen across NumPy versions)
LOCAL_DIMS = 128
PROJECTION_SEED = 0
#: gradient steps and step size of both fits (full batch)
STEPS = 300
BIAS_LR = 0.5
HEAD_LR = 1.0
#: probabilities are floored here before the log (int8 outputs are often exactly 0)
PROB_FLOOR = 1e-4
#: (dx, dy, zoom) of the small crop variants of each shot, on a 48x48 face
SHIFTS = ((2, 0, 1.0), (-2, 0, 1.0), (0, 2, 1.0), (0, -2, 1.0), (0, 0, 1.08), (0, 0, 0.93))
#: which variants of each shot are used: the shot alone, + its mirror, + the SHIFTS too
VARIANTS = ("shot", "flip", "flip+shift")


@dataclass(frozen=True)
class Recipe:
    """The method's switches (the defaults are the shipped method; the others exist for the
    method table of ``benchmarks/personal.py --study``).

    Attributes:
        head: fit the embedding correction W with the bias b; False: the bias b alone (the
            issue's naive baseline).
        standardise: standardise the embedding with the model's FER-2013 mean/std first.
        ridge: L2 strength on W for one shot per class (divided by the shots per class).
        variants: one of :data:`VARIANTS`.
        anchor: subtract the person's mean neutral shot from the features (when neutral is
            enrolled).
        proto: weight of the prototype term folded into W (0: none).
        norm_floor: see :data:`NORM_FLOOR` (1e-6: plain L2 normalisation).
        share: see :data:`SHARE` (1.0: the corrected probabilities alone, the method before
            2026-12-06).
        local_width: see :data:`LOCAL_WIDTH` (0: the fixed pool of 2026-12-06).
    """

    head: bool = True
    standardise: bool = True
    ridge: float = RIDGE
    variants: str = "flip+shift"
    anchor: bool = True
    proto: float = PROTO
    norm_floor: float = NORM_FLOOR
    share: float = SHARE
    local_width: float = LOCAL_WIDTH


@dataclass(frozen=True)
class Correction:
    """What a profile stores to adjust one person's predictions.

    Attributes:
        weight: (D, C) float32 correction on the features (:func:`features`).
        bias: (C,) float32 logit bias.
        enrolled: (C,) bool, the classes the person enrolled (others are left to the model).
        mean, std: (D,) float32 standardisation of the embedding (the model's FER-2013
            statistics, ``spec.embedding``).
        anchor: (D,) float32 the person's mean neutral shot, standardised (zeros: no neutral
            enrolled, or a version-1 profile).
        norm_floor: see :data:`NORM_FLOOR` (used only with a non-zero anchor).
        share: the corrected probabilities' share of the output far from the shots
            (:data:`SHARE`; 1.0 in profiles made before it existed: they predict as when they
            were made).
        centres: (n, LOCAL_DIMS) float32 the shots' projected features (:func:`project`);
            (0, LOCAL_DIMS): no local share (profiles made before it, or ``local_width`` 0).
        width: the local share's Gaussian width in projected feature units (0: none).
    """

    weight: np.ndarray
    bias: np.ndarray
    enrolled: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    anchor: np.ndarray
    norm_floor: float = NORM_FLOOR
    share: float = SHARE
    centres: np.ndarray = field(default_factory=lambda: np.zeros((0, LOCAL_DIMS), np.float32))
    width: float = 0.0

    def __post_init__(self):
        if len(self.centres):  # make the projection now, not on the first face
            projection(self.weight.shape[0])
        # the centres as local_share computes with them, converted once (not per face)
        object.__setattr__(self, "_centres64", np.asarray(self.centres, np.float64))

    def adjust(self, probs: np.ndarray, emb: np.ndarray) -> np.ndarray:
        """(N, C) float32 probabilities + (N, D) float32 embeddings of the same faces ->
        (N, C) float32 personalised probabilities (rows sum to 1)."""
        x, z0, delta = self.terms(probs, emb)
        share = local_share(project(x), self._centres64, self.width, self.share)
        return pool(z0, z0 + delta, share)

    def terms(self, probs: np.ndarray, emb: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The parts :meth:`adjust` pools: (N, D) features (:func:`features`), (N, C) model
        logits ``z0`` and (N, C) correction ``enrolled * (x @ W + b)``, all float32."""
        x = features(emb, self.mean, self.std, self.anchor, self.norm_floor)
        return x, log_probs(probs), self.enrolled * (x @ self.weight + self.bias)


def pool(z0: np.ndarray, z: np.ndarray, share: float | np.ndarray) -> np.ndarray:
    """The linear opinion pool: (N, C) model logits ``z0`` and corrected logits ``z`` ->
    (N, C) float32 probabilities ``(1 - share) * softmax(z0) + share * softmax(z)``; ``share``
    a number or (N,) one per face."""
    s = np.asarray(share, np.float64).reshape(-1, 1)
    return ((1.0 - s) * softmax(z0) + s * softmax(z)).astype(np.float32)


def local_share(xp: np.ndarray, centres: np.ndarray, width: float, share: float
                ) -> np.ndarray:
    """(N,) float64 profile share per face: ``share`` far from every centre, rising to 1 on a
    centre (a Gaussian of the distance to the nearest one, ``width`` its standard deviation).

    Args:
        xp: (N, K) projected features of the faces (:func:`project`).
        centres: (n, K) projected features of the shots (n = 0: ``share`` everywhere).
        width: Gaussian width (<= 0: ``share`` everywhere).
        share: the share far from the shots, in (0, 1].
    """
    if not len(centres) or width <= 0:
        return np.full(len(xp), share)
    xp, centres = np.asarray(xp, np.float64), np.asarray(centres, np.float64)
    d2 = np.maximum((xp ** 2).sum(1)[:, None] + (centres ** 2).sum(1)[None]
                    - 2 * xp @ centres.T, 0.0).min(axis=1)
    return share + (1.0 - share) * np.exp(-d2 / (2.0 * width ** 2))


@functools.lru_cache(maxsize=4)
def projection(dim: int) -> tuple[np.ndarray, np.ndarray]:
    """The fixed random projection of (dim,) features to :data:`LOCAL_DIMS` (a count sketch:
    each feature, with a random sign, is added into one of LOCAL_DIMS buckets of
    ceil(dim / LOCAL_DIMS) features; squared distances are kept in expectation, within
    ~sqrt(2 / LOCAL_DIMS) relative error for features whose energy is spread).

    Returns:
        (dim,) int64 permutation (feature order, bucket by bucket) and (dim,) float32 signs
        (+-1), read-only; seed :data:`PROJECTION_SEED` of NumPy's legacy RandomState, whose
        stream is frozen across NumPy versions (profiles store projected features).
    """
    rng = np.random.RandomState(PROJECTION_SEED)
    perm = rng.permutation(dim).astype(np.int64)
    signs = (2.0 * rng.randint(0, 2, dim) - 1.0).astype(np.float32)
    for a in (perm, signs):
        a.setflags(write=False)
    return perm, signs


def project(x: np.ndarray) -> np.ndarray:
    """(N, D) features (:func:`features`) -> (N, LOCAL_DIMS) float32 projected features."""
    x = np.asarray(x, np.float32)
    perm, signs = projection(x.shape[1])
    per = -(-x.shape[1] // LOCAL_DIMS)
    if x.shape[1] == LOCAL_DIMS * per:  # no padding to add (2048 features: 16 per bucket)
        out = np.take(x, perm, axis=1) * signs  # C-ordered, as the padded copy below
    else:
        out = np.zeros((len(x), LOCAL_DIMS * per), np.float32)
        out[:, :x.shape[1]] = x[:, perm] * signs
    return out.reshape(len(x), LOCAL_DIMS, per).sum(axis=2)


def log_probs(probs: np.ndarray) -> np.ndarray:
    """(N, C) probabilities -> (N, C) float32 logits (floored at :data:`PROB_FLOOR`)."""
    return np.log(np.clip(np.asarray(probs, np.float32), PROB_FLOOR, 1.0))


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (N, C) logits; -inf entries get probability 0."""
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def features(emb: np.ndarray, mean: np.ndarray, std: np.ndarray,
             anchor: np.ndarray | None = None, norm_floor: float = NORM_FLOOR) -> np.ndarray:
    """(N, D) embeddings -> (N, D) float32 rows standardised, then L2-normalised; with a
    non-zero neutral ``anchor`` (D,): minus the anchor, divided by max(norm,
    ``norm_floor`` * sqrt(D))."""
    x = (np.asarray(emb, np.float32) - mean) / std
    floor = 1e-6
    if anchor is not None and np.any(anchor):
        x, floor = x - anchor, max(norm_floor * np.sqrt(x.shape[1]), 1e-6)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), floor)


def shot_variants(crops: np.ndarray, variants: str = "flip+shift"
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Each shot, with its mirror image ("flip") and the :data:`SHIFTS` variants ("+shift").

    Args:
        crops: (N, s, s) uint8 grey face crops.
        variants: one of :data:`VARIANTS`.

    Returns:
        (M, s, s) uint8 crops and (M,) int64 index of each one's source shot; each shot's
        variants are consecutive, the shot first, then its mirror (unless "shot").
    """
    out, src = [], []
    for i, c in enumerate(crops):
        h, w = c.shape
        these = [c] + ([c[:, ::-1]] if variants != "shot" else [])
        for dx, dy, zoom in (SHIFTS if variants == "flip+shift" else ()):
            m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), 0, zoom)
            m[0, 2] += dx
            m[1, 2] += dy
            these.append(cv2.warpAffine(c, m, (w, h), borderMode=cv2.BORDER_REPLICATE))
        out += these
        src += [i] * len(these)
    return np.ascontiguousarray(np.stack(out)), np.array(src, np.int64)


def fit_bias(z0: np.ndarray, y: np.ndarray, enrolled: np.ndarray) -> np.ndarray:
    """Per-person logit bias: cross-entropy of ``softmax(z0 + b)`` over the enrolled classes.

    Args:
        z0: (n, C) model logits of the shots; y: (n,) int class ids; enrolled: (C,) bool.

    Returns:
        (C,) float64 bias, 0 for classes not enrolled.
    """
    c = z0.shape[1]
    target, mask, b = np.eye(c)[y], np.where(enrolled, 0.0, -np.inf), np.zeros(c)
    for _ in range(STEPS):
        grad = (softmax(z0 + b + mask) - target).mean(axis=0)
        b -= BIAS_LR * grad * enrolled
    return b


def fit_head(x: np.ndarray, z0: np.ndarray, y: np.ndarray, enrolled: np.ndarray,
             ridge: float) -> tuple[np.ndarray, np.ndarray]:
    """Ridge-regularised linear correction ``z0 + x @ W + b`` (W shrunk toward 0 = the model).

    Args:
        x: (n, D) shot features (:func:`features`); z0: (n, C) logits; y: (n,) int class ids;
        enrolled: (C,) bool; ridge: L2 strength on W.

    Returns:
        W (D, C) float64 and b (C,) float64, zero on classes not enrolled.
    """
    a, b = fit_dual(x @ x.T, z0, y, enrolled, ridge)
    return x.T @ a, b


def fit_dual(kernel: np.ndarray, z0: np.ndarray, y: np.ndarray, enrolled: np.ndarray,
             ridge: float, bias_ridge: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The correction fitted in the dual: logits ``z0 + kernel @ a + b`` by gradient steps
    with an L2 penalty ``ridge`` on ``a`` (and ``bias_ridge`` on ``b``: 0 = free, shipped).

    Args:
        kernel: (n, n) float64 shot-by-shot kernel (``x @ x.T`` for :func:`fit_head`);
        z0: (n, C) logits; y: (n,) int class ids; enrolled: (C,) bool; ridge: L2 strength;
        bias_ridge: L2 strength on the bias, in [0, 1] (the step size is 1).

    Returns:
        a (n, C) float64 dual weights and b (C,) float64, zero on classes not enrolled.
    """
    n, c = z0.shape
    a, b = np.zeros((n, c)), np.zeros(c)
    target, mask = np.eye(c)[y], np.where(enrolled, 0.0, -np.inf)
    for _ in range(STEPS):
        g = (softmax(z0 + kernel @ a + b + mask) - target) / n
        a -= HEAD_LR * (g + ridge * a) * enrolled
        b -= HEAD_LR * (g.sum(axis=0) + bias_ridge * b) * enrolled
    return a, b


def prototypes(x: np.ndarray, y: np.ndarray, enrolled: np.ndarray) -> np.ndarray:
    """(D, C) cosine prototype weights: each enrolled class's unit mean feature, centred over
    the enrolled classes (so the term only moves enrolled classes relative to each other),
    zero for classes not enrolled.

    Args:
        x: (n, D) shot features (:func:`features`); y: (n,) int class ids; enrolled: (C,) bool.
    """
    p = np.zeros((len(enrolled), x.shape[1]))
    for c in np.flatnonzero(enrolled):
        m = x[y == c].mean(axis=0)
        p[c] = m / max(np.linalg.norm(m), 1e-6)
    p[enrolled] -= p[enrolled].mean(axis=0)
    return p.T


def neutral_anchor(emb: np.ndarray, y: np.ndarray, mean: np.ndarray, std: np.ndarray,
                   neutral: int | None) -> np.ndarray:
    """(D,) float32 mean standardised embedding of the neutral shots (zeros: none)."""
    pick = (y == neutral) if neutral is not None else np.zeros(len(y), bool)
    if not pick.any():
        return np.zeros(emb.shape[1], np.float32)
    return ((np.asarray(emb[pick], np.float32) - mean) / std).mean(axis=0).astype(np.float32)


def fit_correction(probs: np.ndarray, emb: np.ndarray, y: np.ndarray, shots: float,
                   mean: np.ndarray, std: np.ndarray, recipe: Recipe = Recipe(),
                   neutral: int | None = None, src: np.ndarray | None = None) -> Correction:
    """Fit one person's correction from their shots (all variants).

    Args:
        probs: (n, C) float32 model probabilities of every shot variant (no flip TTA).
        emb: (n, D) float32 embeddings of the same variants.
        y: (n,) int class ids.
        shots: photos per enrolled class (average), which sets the ridge (ridge / shots) and
            the prototype weight.
        mean, std: (D,) embedding statistics (``spec.embedding``).
        recipe: the method's switches (default: the shipped method).
        neutral: the class id of "neutral" (its shots make the anchor), None: no anchor.
        src: (n,) int source shot of each variant, as :func:`shot_variants` orders them (the
            local share's centres and width); None: no local share (the fixed pool).
    """
    c, d = probs.shape[1], emb.shape[1]
    enrolled = np.isin(np.arange(c), y)
    if not recipe.standardise:
        mean, std = np.zeros(d, np.float32), np.ones(d, np.float32)
    mean, std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
    anchor = neutral_anchor(emb, y, mean, std, neutral if recipe.anchor else None)
    z0 = log_probs(probs).astype(np.float64)
    x32 = features(emb, mean, std, anchor, recipe.norm_floor)
    if recipe.head:
        x = x32.astype(np.float64)
        w, b = fit_head(x, z0, y, enrolled, recipe.ridge / max(shots, 1e-6))
        w = w + recipe.proto * shots / (shots + 1.0) / PROTO_TEMP * prototypes(x, y, enrolled)
    else:
        w, b = np.zeros((d, c)), fit_bias(z0, y, enrolled)
    centres, width = np.zeros((0, LOCAL_DIMS), np.float32), 0.0
    if src is not None and recipe.local_width > 0 and recipe.share < 1:
        centres, width = local_centres(emb, x32, np.asarray(src), mean, std, anchor, recipe)
    return Correction(w.astype(np.float32), b.astype(np.float32), enrolled, mean, std, anchor,
                      recipe.norm_floor, recipe.share, centres, width)


def local_centres(emb: np.ndarray, x: np.ndarray, src: np.ndarray, mean: np.ndarray,
                  std: np.ndarray, anchor: np.ndarray, recipe: Recipe
                  ) -> tuple[np.ndarray, float]:
    """The local share's centres and width from the shot variants.

    Args:
        emb: (n, D) float32 embeddings of the variants; x: (n, D) their features
            (:func:`features`); src: (n,) their source shots (each shot's variants
            consecutive, the shot then its mirror: :func:`shot_variants`).
        mean, std, anchor: (D,) as in :func:`features`; recipe: its variants and local_width.

    Returns:
        (shots, LOCAL_DIMS) float32 projected features of each shot (flip-averaged when the
        mirror is a variant: the embedding ``predict`` gives the same photo), and the width:
        ``recipe.local_width`` x the median distance of the variants from their shot's centre.
    """
    starts = np.r_[True, src[1:] != src[:-1]]
    pair = 2 if recipe.variants != "shot" else 1
    shot_emb = np.stack([emb[i:i + pair].mean(axis=0) for i in np.flatnonzero(starts)])
    centres = project(features(shot_emb, mean, std, anchor, recipe.norm_floor))
    owner = np.cumsum(starts) - 1
    spread = float(np.median(np.linalg.norm(project(x) - centres[owner], axis=1)))
    return centres, recipe.local_width * spread
