"""Hypothesis strategies: the inputs of the checking engine (:mod:`reference.testing`)
and of every test in ``tests/``, one source for both.

Arrays are built with ``fill=st.nothing()`` so that every element is drawn
(dense arrays, no repeated fill value).
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

F64 = np.float64


def finite_floats(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False, width=64)


def logits(shape, lo: float = -20.0, hi: float = 20.0) -> st.SearchStrategy[np.ndarray]:
    """Dense float64 logits of a fixed or drawn shape."""
    return hnp.arrays(F64, shape, elements=finite_floats(lo, hi), fill=st.nothing())


@st.composite
def boxes(draw, n=None, lo: float = 0.0, hi: float = 200.0, min_size: float = 0.5,
          max_size: float = 100.0) -> np.ndarray:
    """``(n, 4)`` float64 boxes ``(x1, y1, x2, y2)`` with positive width and height."""
    if n is None:
        n = draw(st.integers(0, 8))
    xy = draw(hnp.arrays(F64, (n, 2), elements=finite_floats(lo, hi), fill=st.nothing()))
    wh = draw(hnp.arrays(F64, (n, 2), elements=finite_floats(min_size, max_size),
                         fill=st.nothing()))
    return np.concatenate([xy, xy + wh], axis=1)


@st.composite
def points_in_boxes(draw, n=None, margin: float = 0.05):
    """``(points (n, 2), boxes (n, 4))`` with each point strictly inside its box."""
    b = draw(boxes(n=n, min_size=1.0))
    n = b.shape[0]
    u = draw(hnp.arrays(F64, (n, 2), elements=finite_floats(margin, 1.0 - margin),
                        fill=st.nothing()))
    pts = b[:, :2] + u * (b[:, 2:] - b[:, :2])
    return pts, b


def dfl_targets(n, reg_max: int = 16) -> st.SearchStrategy[np.ndarray]:
    """``(n,)`` DFL targets in ``[0, reg_max - 0.1]``, the range the head produces."""
    return hnp.arrays(F64, (n,), elements=finite_floats(0.0, reg_max - 0.1), fill=st.nothing())


def qfl_inputs(max_n: int = 12, max_c: int = 6, logit_range: float = 20.0):
    """``(pred (N, C), label (N,), score (N,))``: labels in ``[-1, C+1]``, scores in [0, 1]."""

    @st.composite
    def build(draw):
        n = draw(st.integers(0, max_n))
        c = draw(st.integers(1, max_c))
        pred = draw(logits((n, c), -logit_range, logit_range))
        label = draw(hnp.arrays(np.int64, (n,), elements=st.integers(-1, c + 1), fill=st.nothing()))
        score = draw(hnp.arrays(F64, (n,), elements=finite_floats(0.0, 1.0), fill=st.nothing()))
        return pred, label, score

    return build()


# --- issue 2: the differentiable pieces (appended; the strategies above behave as before) ---

#: Logits up to this magnitude must give finite outputs and gradients everywhere.
WIDE_LOGIT = 1e4


def wide_logits(shape, bound: float = WIDE_LOGIT) -> st.SearchStrategy[np.ndarray]:
    """Dense float64 logits: either moderate (``|x| <= 20``) or wide (``|x| <= bound``;
    such arrays nearly always hold an entry exactly at ``±bound``, and often 0)."""
    return st.one_of(logits(shape, -20.0, 20.0), logits(shape, -bound, bound))


def integral_inputs(max_n: int = 8, reg_maxes=(1, 2, 4, 16), lo: float = -20.0,
                    hi: float = 20.0, wide: bool = False):
    """``(pred (N, 4(n+1)), reg_max)``; with ``wide`` the logits reach ``±WIDE_LOGIT``."""

    @st.composite
    def build(draw):
        reg_max = draw(st.sampled_from(reg_maxes))
        n = draw(st.integers(0, max_n))
        shape = (n, 4 * (reg_max + 1))
        pred = draw(wide_logits(shape) if wide else logits(shape, lo, hi))
        return pred, reg_max

    return build()


def dfl_labels(m: int, reg_max: int) -> st.SearchStrategy[np.ndarray]:
    """``(m,)`` DFL targets in ``[0, reg_max)``: floats, integers and the clamp ``n - 0.1``."""
    elements = st.one_of(
        st.floats(0.0, float(reg_max), exclude_max=True, allow_nan=False, width=64),
        st.integers(0, reg_max - 1).map(float),
        st.just(reg_max - 0.1),
    )
    return hnp.arrays(F64, (m,), elements=elements, fill=st.nothing())


def dfl_inputs(max_m: int = 8, max_reg_max: int = 16, lo: float = -20.0, hi: float = 20.0,
               wide: bool = False):
    """``(pred (M, n+1), label (M,))`` with ``1 <= n <= max_reg_max`` and labels in ``[0, n)``."""

    @st.composite
    def build(draw):
        reg_max = draw(st.integers(1, max_reg_max))
        m = draw(st.integers(0, max_m))
        shape = (m, reg_max + 1)
        pred = draw(wide_logits(shape) if wide else logits(shape, lo, hi))
        return pred, draw(dfl_labels(m, reg_max))

    return build()


def wide_qfl_inputs(max_n: int = 12, max_c: int = 6):
    """Like :func:`qfl_inputs` with logits up to ``±WIDE_LOGIT`` and scores often 0 or 1."""

    @st.composite
    def build(draw):
        n = draw(st.integers(0, max_n))
        c = draw(st.integers(1, max_c))
        pred = draw(wide_logits((n, c)))
        label = draw(hnp.arrays(np.int64, (n,), elements=st.integers(-1, c + 1), fill=st.nothing()))
        score_el = st.one_of(finite_floats(0.0, 1.0), st.sampled_from([0.0, 1.0]))
        score = draw(hnp.arrays(F64, (n,), elements=score_el, fill=st.nothing()))
        return pred, label, score

    return build()


qfl_betas = st.one_of(st.sampled_from([0.0, 1.0, 2.0]), finite_floats(1.0, 3.0))
"""QFL exponents: 0 and ``beta >= 1`` (``|y - σ|^β`` is not differentiable at 0 for β < 1)."""


@st.composite
def box_pairs(draw, n=None, max_n: int = 8):
    """``(pred (n, 4), target (n, 4))`` aligned pairs: independent boxes (often disjoint)
    or a target jittered by up to 30 px per side (overlapping, nested), each with positive size."""
    if n is None:
        n = draw(st.integers(0, max_n))
    target = draw(boxes(n=n))
    if draw(st.booleans()):
        return draw(boxes(n=n)), target
    jitter = draw(hnp.arrays(F64, (n, 4), elements=finite_floats(-30.0, 30.0), fill=st.nothing()))
    pred = target + jitter
    lo = np.minimum(pred[:, :2], pred[:, 2:] - 0.5)
    hi = np.maximum(pred[:, 2:], pred[:, :2] + 0.5)
    return np.concatenate([lo, hi], axis=1), target


@st.composite
def points_and_distances(draw, n=None, max_n: int = 8):
    """``(points (n, 2), distance (n, 4))``: points in ``[-20, 220]``, distances in
    ``[-5, 100]``."""
    if n is None:
        n = draw(st.integers(0, max_n))
    pts = draw(hnp.arrays(F64, (n, 2), elements=finite_floats(-20.0, 220.0), fill=st.nothing()))
    dist = draw(hnp.arrays(F64, (n, 4), elements=finite_floats(-5.0, 100.0), fill=st.nothing()))
    return pts, dist


max_shapes = st.tuples(st.integers(1, 200), st.integers(1, 200))
"""``(h, w)`` clamp bounds for ``distance2bbox``."""


@st.composite
def reduce_inputs(draw, max_n: int = 8):
    """``(loss, weight | None, reduction, avg_factor | None)`` valid for ``weight_reduce``.

    ``loss`` is ``(n,)`` or ``(n, k)``; ``weight`` has ``loss``'s shape or a
    broadcastable one (``(n, 1)``, ``(k,)``); ``avg_factor`` is never given with ``sum``.
    """
    n = draw(st.integers(0, max_n))
    shape = draw(st.sampled_from([(n,), (n, 3)]))
    loss = draw(hnp.arrays(F64, shape, elements=finite_floats(0.0, 50.0), fill=st.nothing()))
    w_shapes = [None, shape] + ([(n, 1), (3,)] if len(shape) == 2 else [])
    w_shape = draw(st.sampled_from(w_shapes))
    weight = None
    if w_shape is not None:
        weight = draw(hnp.arrays(F64, w_shape, elements=finite_floats(0.0, 2.0), fill=st.nothing()))
    reduction = draw(st.sampled_from(["none", "mean", "sum"]))
    avg_factor = None
    if reduction != "sum" and draw(st.booleans()):
        # now and then a tiny one, where an epsilon added to it shows (mmdetection 3.x)
        avg_factor = draw(st.one_of(finite_floats(0.5, 100.0), st.sampled_from([1e-6, 1e-3])))
    return loss, weight, reduction, avg_factor


# --- the whole head ------------------------------------------------------------

HEAD_STRIDES = (8, 16, 32)


@st.composite
def head_workloads(draw, max_batch: int = 3, max_classes: int = 20, reg_max: int = 16):
    """A small GFL head workload: config, per-level outputs, gts and img_metas.

    The batch is padded to ``(H, W)`` (multiples of 32 in [32, 96]); each image
    has its own ``img_shape`` and ``pad_shape`` inside it (so some anchors are
    invalid), 0–5 gts inside its image, and random logits.
    """
    from reference.config import GFLConfig

    batch = draw(st.integers(1, max_batch))
    num_classes = draw(st.integers(1, max_classes))
    cfg = GFLConfig(num_classes=num_classes, reg_max=reg_max, strides=HEAD_STRIDES)
    pad_h = 32 * draw(st.integers(1, 3))
    pad_w = 32 * draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    sizes = [(-(-pad_h // s), -(-pad_w // s)) for s in HEAD_STRIDES]
    k = 4 * (reg_max + 1)
    cls_scores = [rng.normal(scale=2.0, size=(batch, num_classes, h, w)) for h, w in sizes]
    bbox_preds = [rng.normal(scale=2.0, size=(batch, k, h, w)) for h, w in sizes]
    gt_bboxes, gt_labels, img_metas = [], [], []
    for _ in range(batch):
        img_h = draw(st.integers(pad_h // 2, pad_h))
        img_w = draw(st.integers(pad_w // 2, pad_w))
        pad = (draw(st.integers(img_h, pad_h)), draw(st.integers(img_w, pad_w)))
        img_metas.append({"img_shape": (img_h, img_w), "pad_shape": pad})
        g = draw(st.integers(0, 5))
        xy = rng.uniform(0, [img_w - 4, img_h - 4], size=(g, 2))
        wh = rng.uniform(4, [img_w, img_h], size=(g, 2))
        boxes = np.concatenate([xy, np.minimum(xy + wh, [img_w, img_h])], axis=1)
        gt_bboxes.append(boxes)
        gt_labels.append(rng.integers(0, num_classes, size=g))
    return cfg, cls_scores, bbox_preds, gt_bboxes, gt_labels, img_metas


# --- anchors, ATSS and NMS (issue 3) -----------------------------------------
# These draw whole arrays with hypothesis' default ``fill`` (much cheaper than
# one draw per element, and the repeated fill value gives the exact ties and
# duplicates that ranking and NMS tests need).


def nice_or_float(lo: float, hi: float, step: float = 0.5) -> st.SearchStrategy[float]:
    """A float in ``[lo, hi]``: half the time on a ``step`` grid (exact ties and boundaries)."""
    n = int((hi - lo) / step)
    return st.one_of(st.integers(0, n).map(lambda k: lo + k * step), finite_floats(lo, hi))


@st.composite
def grid_values(draw, n: int, lo: float, hi: float, step: float, dense: bool = False) -> np.ndarray:
    """``(n,)`` float64 values ``lo + step * k`` in ``[lo, hi]``, half the time jittered.

    ``dense``: draw every element (no repeated fill value).
    """
    k_max = max(0, int((hi - lo) / step))
    fill = st.nothing() if dense else None
    k = draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, k_max), fill=fill))
    out = lo + step * k.astype(F64)
    if draw(st.booleans()):
        out = out + draw(hnp.arrays(F64, (n,), elements=finite_floats(0.0, step), fill=fill))
    return np.minimum(out, max(lo, hi))


@st.composite
def featmap_levels(draw, max_levels: int = 3, max_side: int = 8):
    """``(featmap_sizes, strides)``: 1..``max_levels`` levels, strides 8, 16, 32..., sizes halving.

    Level sizes go down to 1x1 (fewer anchors than the default ``topk``) and
    may be 0 on a side (an empty level).
    """
    num = draw(st.integers(1, max_levels))
    strides = tuple(8 * 2**lvl for lvl in range(num))
    sizes = []
    for lvl in range(num):
        side = max(1, max_side >> lvl)
        sizes.append((draw(st.integers(0 if lvl else 1, side)), draw(st.integers(1, side))))
    return tuple(sizes), strides


def grid_boxes(featmap_sizes, strides, base: float = 8.0) -> list[np.ndarray]:
    """GFL anchors by the plain formula (square of side ``base * s`` centred at ``(j s, i s)``)."""
    out = []
    for (h, w), s in zip(featmap_sizes, strides):
        ii, jj = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        cx, cy = (jj * s).reshape(-1).astype(F64), (ii * s).reshape(-1).astype(F64)
        half = base * s / 2
        out.append(np.stack([cx - half, cy - half, cx + half, cy + half], axis=1).reshape(-1, 4))
    return out


@st.composite
def gt_boxes(draw, n: int, extent, min_size: float = 0.5, max_size: float | None = None,
             lo: float = -8.0, step: float = 0.5):
    """``(n, 4)`` float64 boxes, coordinates often on a ``step`` grid.

    ``extent`` is a float or ``(w, h)``: top-left corners lie in ``[lo, w] x [lo, h]``
    and sides in ``[min_size, max_size]`` (default ``max(w, h)``), more often large.
    """
    ew, eh = (extent, extent) if np.isscalar(extent) else extent
    max_size = max(ew, eh) if max_size is None else max_size
    x = draw(grid_values(n, lo, ew, step, dense=True))
    y = draw(grid_values(n, lo, eh, step, dense=True))
    w = max_size + min_size - draw(grid_values(n, min_size, max_size, step, dense=True))
    h = max_size + min_size - draw(grid_values(n, min_size, max_size, step, dense=True))
    return np.stack([x, y, x + w, y + h], axis=1).reshape(n, 4)


@st.composite
def atss_problems(draw, max_images: int = 1, max_gts: int = 5, max_ignore: int = 2):
    """A batch for ATSS sharing one set of anchors.

    Returns a dict: ``featmap_sizes``, ``strides``, ``anchors (A, 4)``,
    ``num_level_anchors``, ``topk``, ``pad_shapes`` (one ``(h, w)`` per image),
    ``gt_bboxes`` / ``gt_labels`` / ``gt_bboxes_ignore`` (lists per image) and
    ``ignore_iof_thr``.
    """
    sizes, strides = draw(featmap_levels())
    levels = grid_boxes(sizes, strides)
    extent = float(max(max(h, w) * s for (h, w), s in zip(sizes, strides)))
    grid = (float(sizes[0][1] * strides[0]), float(sizes[0][0] * strides[0]))  # level 0's (w, h)
    num_images = draw(st.integers(1, max_images))
    pads, gts, labels, ignores = [], [], [], []
    pad = st.one_of(st.just(extent), nice_or_float(0.0, extent, 4.0))  # often no padding
    for _ in range(num_images):
        pads.append((draw(pad), draw(pad)))
        g = max_gts - draw(st.integers(0, max_gts))  # mostly several gts, 0 now and then
        gts.append(draw(gt_boxes(g, grid, min_size=2.0, max_size=extent)))
        labels.append(draw(hnp.arrays(np.int64, (g,), elements=st.integers(0, 4))))
        n_ign = draw(st.integers(0, max_ignore))  # big enough to cover whole anchors
        ignores.append(draw(gt_boxes(n_ign, extent, 8.0, 2 * extent, lo=-extent, step=4.0)))
    return {
        "featmap_sizes": sizes,
        "strides": strides,
        "anchors": np.concatenate(levels).reshape(-1, 4),
        "num_level_anchors": [lv.shape[0] for lv in levels],
        "topk": draw(st.sampled_from([9, 3, 2, 1, 9, 9])),  # mostly the default
        "pad_shapes": pads,
        "gt_bboxes": gts,
        "gt_labels": labels,
        "gt_bboxes_ignore": ignores,
        "ignore_iof_thr": draw(st.one_of(st.sampled_from([0.25, 0.5]), finite_floats(0.05, 0.95))),
    }


IOU_THRESHOLDS = st.one_of(st.sampled_from([0.0, 0.3, 0.5, 0.6, 0.7, 1.0]), finite_floats(0.0, 1.0))


def tied_scores(shape, special=(0.1, 0.5, 0.9)) -> st.SearchStrategy[np.ndarray]:
    """Scores in [0, 1], often exactly one of ``special`` (ties, thresholds)."""
    element = st.one_of(st.sampled_from(list(special)), finite_floats(0.0, 1.0))
    return hnp.arrays(F64, shape, elements=element)


@st.composite
def nms_problems(draw, max_n: int = 24, max_groups: int = 3, dtypes=(np.float32, np.float64)):
    """Clustered boxes for NMS: ``(boxes (N, 4), scores (N,), idxs (N,), iou_threshold)``.

    Coordinates are often on a 0.25 grid and scores often from a small set, so
    exact score ties, duplicate and zero-area boxes and IoUs exactly at the
    threshold occur.
    """
    n = draw(st.integers(0, max_n))
    dtype = draw(st.sampled_from(dtypes))
    x, y = draw(grid_values(n, 0.0, 40.0, 0.25)), draw(grid_values(n, 0.0, 40.0, 0.25))
    w, h = draw(grid_values(n, 0.0, 30.0, 0.25)), draw(grid_values(n, 0.0, 30.0, 0.25))
    boxes_ = np.stack([x, y, x + w, y + h], axis=1).reshape(n, 4).astype(dtype)
    scores = draw(tied_scores((n,))).astype(dtype)
    idxs = draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, max_groups - 1)))
    return boxes_, scores, idxs, draw(IOU_THRESHOLDS)


#: ``(p, q)``: a ``p``-wide box inside a ``q``-wide one of the same height, sharing a corner,
#: has IoU exactly ``p / q`` (every number on the way is exact in binary).
EXACT_IOU_RATIOS = ((1, 2), (3, 5), (1, 4), (3, 4), (7, 10), (1, 1))


def quarter_grid(lo: float, hi: float) -> st.SearchStrategy[float]:
    """A multiple of 0.25 in ``[lo, hi]`` (exact in float16, float32 and float64 here)."""
    return st.integers(int(4 * lo), int(4 * hi)).map(lambda k: k / 4)


@st.composite
def nms_boundary_problems(draw, max_n: int = 16, max_groups: int = 3,
                          dtypes=(np.float32, np.float64)):
    """NMS inputs at the decision boundaries: ``(boxes (N, 4), scores (N,), idxs (N,), thr)``.

    :func:`nms_problems`' boxes plus: pairs whose IoU is exactly ``p / q``
    (:data:`EXACT_IOU_RATIOS`; half the time the threshold is that ratio),
    exact duplicates of drawn boxes, and zero-area boxes (lines and points; two
    of them give a NaN IoU). Scores come from a small set (ties). The rows are
    shuffled, so the boundary boxes land anywhere in the ranking; N may be 0.
    """
    boxes_, _, _, thr = draw(nms_problems(max_n=max_n, max_groups=max_groups, dtypes=dtypes))
    p, q = draw(st.sampled_from(EXACT_IOU_RATIOS))
    if draw(st.booleans()):
        thr = p / q
    extra = []
    for _ in range(draw(st.integers(0, 3))):  # IoU exactly p / q
        x, y, h = draw(quarter_grid(0, 40)), draw(quarter_grid(0, 40)), draw(quarter_grid(0.25, 30))
        a = 2.0 ** draw(st.integers(-2, 2))
        extra += [[x, y, x + q * a, y + h], [x, y, x + p * a, y + h]]
    for _ in range(draw(st.integers(0, 3))):  # zero area: a point, or a line either way
        x, y = draw(quarter_grid(0, 40)), draw(quarter_grid(0, 40))
        w, h = draw(st.sampled_from([(0.0, 0.0), (0.0, 5.0), (5.0, 0.0)]))
        extra += [[x, y, x + w, y + h]] * draw(st.integers(1, 2))
    rows = [boxes_.astype(F64), np.array(extra, F64).reshape(-1, 4)]
    if boxes_.shape[0]:  # exact duplicates of drawn boxes
        dup = draw(st.lists(st.integers(0, boxes_.shape[0] - 1), max_size=3))
        rows.append(boxes_[dup].astype(F64))
    all_boxes = np.concatenate(rows).reshape(-1, 4)  # (N, 4)
    n = all_boxes.shape[0]
    perm = np.array(draw(st.permutations(range(n))), dtype=np.int64).reshape(n)
    scores = draw(tied_scores((n,)))
    idxs = draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, max_groups - 1)))
    return all_boxes[perm].astype(boxes_.dtype), scores.astype(boxes_.dtype), idxs, thr


@st.composite
def multiclass_problems(draw, max_n: int = 16, max_classes: int = 4, boundary: bool = False):
    """``(multi_bboxes, multi_scores, score_thr, iou_threshold, max_num)`` for multiclass NMS.

    ``multi_bboxes`` is ``(N, 4)`` or ``(N, 4C)``, ``multi_scores`` ``(N, C+1)``.
    Scores are often exactly ``score_thr`` (strict comparison) or tied. With
    ``boundary`` the boxes come from :func:`nms_boundary_problems` (exact-threshold
    pairs, duplicates, zero-area boxes).
    """
    source = nms_boundary_problems if boundary else nms_problems
    boxes_, _, _, thr = draw(source(max_n=max_n, max_groups=1))
    n, dtype = boxes_.shape[0], boxes_.dtype
    c = draw(st.integers(1, max_classes))
    score_thr = draw(st.sampled_from([0.0, 0.05, 0.25, 0.5]))
    scores = draw(tied_scores((n, c + 1), (score_thr, 0.5, 0.9))).astype(dtype)
    if draw(st.booleans()):  # one box per class: jitter the shared boxes per class
        shift = draw(grid_values(n * c * 4, -3.0, 3.0, 0.5)).reshape(n, c * 4)
        boxes_ = (np.tile(boxes_.astype(F64), (1, c)) + shift).astype(dtype)
    max_num = draw(st.sampled_from([-1, 0, 1, 3, 100]))
    return boxes_, scores, score_thr, thr, max_num



# --- inputs at the edges of a clamp (the checking engine, issue part 2) -----------------------


@st.composite
def clamp_boundary_decodes(draw, max_n: int = 8):
    """``(points (n, 2), distance (n, 4), max_shape (h, w))`` whose decoded coordinates often
    lie *exactly* on a clamp bound of ``distance2bbox``: 0, or the image's ``w`` / ``h``.

    Points and distances as :func:`points_and_distances`; then each coordinate is, by a
    draw, kept, put on 0 (``l = x``) or put on its upper bound (``r = w - x``). A row with
    a coordinate put on a bound has its point rounded to the 0.5 grid first, so that
    ``x + (w - x) == w`` holds exactly in floating point.
    """
    pts, dist = draw(points_and_distances(max_n=max_n))
    h, w = draw(max_shapes)
    n = pts.shape[0]
    snap = draw(hnp.arrays(np.int64, (n, 4), elements=st.integers(0, 2)))  # 0 keep, 1 low, 2 high
    rows = snap.any(axis=1)
    pts[rows] = np.round(pts[rows] * 2) / 2
    xy = np.concatenate([pts, pts], axis=1)  # (n, 4): x, y, x, y of each coordinate
    upper = np.array([w, h, w, h], dtype=F64)
    sign = np.array([-1.0, -1.0, 1.0, 1.0])  # coordinate = point + sign * distance
    onto = np.where(snap == 1, 0.0, upper)  # the bound each snapped coordinate lands on
    dist = np.where(snap > 0, sign * (onto - xy), dist)
    return pts, dist, (h, w)
