"""The conformance-kit examples (``examples/conformance/``): each adapter re-implements
another project's GFL; here every piece it exposes is checked against the NumPy
reference with the switches of its dialect (``reference.dialects``), on random inputs.

The adapters are loaded by path: ``examples/`` is not a package.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

import reference as R
from reference.dialects import DIALECTS

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "conformance"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"conformance_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GFOCAL = _load("gfocal_adapter")
NANODET = _load("nanodet_adapter")
ADAPTERS = [pytest.param(GFOCAL, id="gfocal"), pytest.param(NANODET, id="nanodet")]
SEEDS = [0, 1, 2]


def t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


def close(got: torch.Tensor, expected: np.ndarray, rtol: float = 1e-10, atol: float = 1e-12):
    got = got.detach().numpy()
    assert got.shape == np.shape(expected)
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol, equal_nan=True)


def boxes(rng: np.random.Generator, n: int, scale: float = 50.0) -> np.ndarray:
    """``n`` valid boxes (x2 >= x1, y2 >= y1), some tiny, some large."""
    xy = rng.uniform(-scale, scale, (n, 2))
    wh = rng.uniform(0.0, scale, (n, 2)) * rng.choice([0.02, 1.0], (n, 1))
    return np.concatenate([xy, xy + wh], axis=1)


def qfl_problem(rng: np.random.Generator, n: int = 64, c: int = 5):
    pred = rng.normal(0.0, 4.0, (n, c))
    label = rng.integers(-1, c + 1, n)  # -1 and C are negatives, 0..C-1 objects
    score = rng.uniform(0.0, 1.0, n)
    return pred, label, score


def dialect(adapter):
    return DIALECTS[adapter.DIALECT]


# --- both adapters -------------------------------------------------------------------------


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_the_dialect_is_known(adapter):
    assert dialect(adapter).name == adapter.DIALECT


@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize("reg_max", [16, 7, 1])
@pytest.mark.parametrize("seed", SEEDS)
def test_integral(adapter, reg_max, seed):
    pred = np.random.default_rng(seed).normal(0.0, 5.0, (20, 4 * (reg_max + 1)))
    close(adapter.integral(t(pred), reg_max), R.integral_forward(pred, reg_max)[0])


@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize("reg_max", [16, 7])
@pytest.mark.parametrize("seed", SEEDS)
def test_dfl(adapter, reg_max, seed):
    rng = np.random.default_rng(seed)
    pred = rng.normal(0.0, 3.0, (40, reg_max + 1))
    label = rng.uniform(0.0, reg_max - 0.1, 40)
    label[:4] = [0.0, 1.0, reg_max - 1.0, reg_max - 0.1]  # on and next to the bins
    clamp_eps = 0.01 if dialect(adapter).dfl_clamps_target else None
    close(adapter.distribution_focal_loss(t(pred), t(label)),
          R.dfl_forward(pred, label, clamp_eps=clamp_eps)[0])  # fmt: skip


@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize("max_dis", [None, 16.0, 7.0])
@pytest.mark.parametrize("seed", SEEDS)
def test_bbox2distance(adapter, max_dis, seed):
    rng = np.random.default_rng(seed)
    points = rng.uniform(-20.0, 20.0, (30, 2))
    bbox = boxes(rng, 30, scale=20.0)
    expected = R.bbox2distance(points, bbox, max_dis, eps=dialect(adapter).target_eps)
    close(adapter.bbox2distance(t(points), t(bbox), max_dis), expected)


@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize("max_shape", [None, (40, 60), (33, 17)])
@pytest.mark.parametrize("seed", SEEDS)
def test_distance2bbox(adapter, max_shape, seed):
    rng = np.random.default_rng(seed)
    points = rng.uniform(-10.0, 70.0, (30, 2))
    distance = rng.uniform(0.0, 30.0, (30, 4))
    expected, _ = R.distance2bbox_forward(
        points, distance, max_shape, clamp_offset=dialect(adapter).decode_clamp_offset
    )
    close(adapter.distance2bbox(t(points), t(distance), max_shape), expected)


@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("avg_factor", [None, 3.5, 1e-3])
@pytest.mark.parametrize("weighted", [False, True])
def test_weight_reduce(adapter, reduction, avg_factor, weighted):
    rng = np.random.default_rng(7)
    loss = rng.uniform(0.0, 2.0, (6, 3))
    weight = rng.uniform(0.0, 1.0, (6, 3)) if weighted else None
    args = (loss, weight, reduction, avg_factor)
    if reduction == "sum" and avg_factor is not None:
        with pytest.raises(ValueError):
            adapter.weight_reduce_loss(t(loss), None, reduction, avg_factor)
        return
    expected, _ = R.weight_reduce_forward(*args, eps=dialect(adapter).avg_factor_eps)
    got = adapter.weight_reduce_loss(t(loss), None if weight is None else t(weight), *args[2:])
    close(got, expected)


@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize("beta", [2.0, 1.5, 1.0, 3.0, 0.0])
@pytest.mark.parametrize("seed", SEEDS)
def test_qfl(adapter, beta, seed):
    pred, label, score = qfl_problem(np.random.default_rng(seed))
    d = dialect(adapter)
    with np.errstate(invalid="ignore"):  # (y - sigma) ** 1.5 < 0 is NaN without abs
        expected, _ = R.qfl_forward(pred, label, score, beta, abs_factor=d.qfl_abs)
    if d.background_first:  # objects 1..C, background 0
        c = pred.shape[1]
        label = np.where((label >= 0) & (label < c), label + 1, 0)
    close(adapter.quality_focal_loss(t(pred), t(label), t(score), beta), expected)


# --- GFocal --------------------------------------------------------------------------------


@pytest.mark.parametrize("beta", [1.5, 2.5, 0.5])
def test_gfocal_qfl_has_no_abs(beta):
    """A positive whose sigmoid exceeds its score gets NaN for a fractional beta (the
    base (y - sigma) is negative), as the reference with ``abs_factor=False`` does."""
    pred = np.array([[3.0, -2.0], [-3.0, 0.5]])
    label = np.array([1, 1])  # both positives of class 0 (GFocal's label 1)
    score = np.array([0.2, 0.9])  # row 0: sigma(3) > 0.2, row 1: sigma(-3) < 0.9
    got = GFOCAL.quality_focal_loss(t(pred), t(label), t(score), beta).numpy()
    assert np.isnan(got[0]) and np.isfinite(got[1])
    with np.errstate(invalid="ignore"):
        expected, _ = R.qfl_forward(pred, np.array([0, 0]), score, beta, abs_factor=False)
    np.testing.assert_allclose(got, expected, rtol=1e-12, equal_nan=True)


@pytest.mark.parametrize("mode", ["iou", "iof"])
@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("seed", SEEDS)
def test_gfocal_bbox_overlaps(mode, aligned, seed):
    rng = np.random.default_rng(seed)
    b1, b2 = boxes(rng, 12), boxes(rng, 12 if aligned else 9)
    b2[:3] = b1[:3]  # identical pairs: IoU 1
    off = DIALECTS["gfocal"].iou_offset
    expected = R.bbox_overlaps(b1, b2, mode, aligned, offset=off)
    close(GFOCAL.bbox_overlaps(t(b1), t(b2), mode, aligned), expected)


def test_gfocal_bbox_overlaps_has_no_giou_mode():
    """mmdetection 1.x's ``bbox_overlaps`` asserts ``mode in ['iou', 'iof']``."""
    b = t(boxes(np.random.default_rng(0), 3))
    with pytest.raises(AssertionError):
        GFOCAL.bbox_overlaps(b, b, "giou", True)


@pytest.mark.parametrize("seed", SEEDS)
def test_gfocal_giou_loss(seed):
    """GFocal's GIoU loss is 1 - GIoU with the "+1", the eps *added* (1e-6): within
    1e-5 of the reference GIoU with ``offset=1``."""
    rng = np.random.default_rng(seed)
    pred, target = boxes(rng, 40), boxes(rng, 40)
    target[:5] = pred[:5]
    expected = 1.0 - R.bbox_overlaps(pred, target, "giou", True, offset=1)
    close(GFOCAL.giou_loss(t(pred), t(target)), expected, rtol=0.0, atol=1e-5)


def test_gfocal_giou_loss_is_not_the_reference_giou_loss():
    """``reference.giou_loss_forward`` has no "+1" switch: on small boxes they differ."""
    pred = np.array([[0.0, 0.0, 2.0, 2.0]])
    target = np.array([[1.0, 1.0, 3.0, 3.0]])
    ref, _ = R.giou_loss_forward(pred, target)  # 2 - I/U - U/E = 2 - 1/7 - 7/9
    got = GFOCAL.giou_loss(t(pred), t(target)).numpy()  # with "+1": 2 - 4/14 - 14/16
    np.testing.assert_allclose(ref, [2 - 1 / 7 - 7 / 9], rtol=1e-9)
    np.testing.assert_allclose(got, [2 - 4 / 14 - 14 / 16], rtol=1e-6)


@pytest.mark.parametrize("seed", SEEDS)
def test_gfocal_iou_target(seed):
    """GFocal's quality target (``GFLHead.iou_target``): the "+1" IoU, eps=1e-7 added."""
    rng = np.random.default_rng(seed)
    pred, target = boxes(rng, 40), boxes(rng, 40)
    expected = R.bbox_overlaps(pred, target, "iou", True, offset=1)
    close(GFOCAL.iou_target(t(pred), t(target)), expected, rtol=0.0, atol=1e-6)


# --- nanodet -------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["iou", "iof", "giou"])
@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("seed", SEEDS)
def test_nanodet_bbox_overlaps(mode, aligned, seed):
    rng = np.random.default_rng(seed)
    b1, b2 = boxes(rng, 12), boxes(rng, 12 if aligned else 9)
    b1[0] = b2[0] = [1.0, 1.0, 1.0, 5.0]  # a zero-area pair: the eps floor decides
    off = DIALECTS["nanodet"].iou_offset
    expected = R.bbox_overlaps(b1, b2, mode, aligned, offset=off)
    close(NANODET.bbox_overlaps(t(b1), t(b2), mode, aligned), expected)


@pytest.mark.parametrize("seed", SEEDS)
def test_nanodet_giou_loss(seed):
    rng = np.random.default_rng(seed)
    pred, target = boxes(rng, 40), boxes(rng, 40)
    target[:5] = pred[:5]
    close(NANODET.giou_loss(t(pred), t(target)), R.giou_loss_forward(pred, target, 1e-6)[0])


@pytest.mark.parametrize("octave_base_scale", [5, 4, 8, 1])
def test_nanodet_grid_anchors(octave_base_scale):
    sizes, strides = [(5, 7), (3, 4), (1, 2)], [8, 16, 32]
    got = NANODET.grid_anchors(sizes, strides, octave_base_scale, dtype=torch.float64)
    co = DIALECTS["nanodet"].center_offset
    expected = R.grid_anchors(sizes, strides, octave_base_scale, center_offset=co)
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        close(g, e, rtol=0.0, atol=0.0)
    # nanodet's own dtype, float32, is exact on these grids too
    for g, e in zip(NANODET.grid_anchors(sizes, strides, octave_base_scale), expected):
        assert g.dtype == torch.float32
        close(g.double(), e, rtol=0.0, atol=0.0)


def atss_problem(rng: np.random.Generator, num_gts: int):
    sizes, strides = [(8, 8), (4, 4), (2, 2)], [8, 16, 32]  # the last level has 4 < topk cells
    levels = R.grid_anchors(sizes, strides, 5, center_offset=0.5)
    anchors = np.concatenate(levels)
    xy = rng.uniform(0.0, 56.0, (num_gts, 2))
    wh = rng.uniform(4.0, 40.0, (num_gts, 2))
    gts = np.concatenate([xy, np.minimum(xy + wh, 64.0)], axis=1)
    labels = rng.integers(0, 3, num_gts)
    return anchors, [len(a) for a in levels], gts, labels


@pytest.mark.parametrize("num_gts", [0, 1, 3, 6])
@pytest.mark.parametrize("seed", SEEDS)
def test_nanodet_atss_assign(num_gts, seed):
    """The same positives, gts and labels as the reference with nanodet's ``std_ddof``;
    ``max_overlaps`` is the IoU at positives and nanodet's ``-INF`` (-1e8) elsewhere
    (0 everywhere without gts), where the reference stores 0."""
    anchors, counts, gts, labels = atss_problem(np.random.default_rng(seed), num_gts)
    ref = R.atss_assign(anchors, counts, gts, labels, std_ddof=DIALECTS["nanodet"].atss_std_ddof)
    got = NANODET.atss_assign(t(anchors), counts, t(gts), t(labels))
    assert got.num_gts == num_gts
    np.testing.assert_array_equal(got.gt_inds.numpy(), ref.gt_inds)
    np.testing.assert_array_equal(got.labels.numpy(), ref.labels)
    pos = ref.gt_inds > 0
    mo = got.max_overlaps.numpy()
    np.testing.assert_allclose(mo[pos], ref.max_overlaps[pos], rtol=1e-12)
    assert np.all(mo[~pos] == (-1e8 if num_gts else 0.0))
    if num_gts >= 3:
        assert pos.any()


# --- the kit on the adapters ---------------------------------------------------------------

KIT_CASES = [
    # (adapter, piece, its function, dialects that must differ)
    pytest.param(NANODET, "grid_anchors", "grid_anchors", ["mmdet2"], id="nanodet-grid_anchors"),
    pytest.param(NANODET, "bbox_overlaps", "bbox_overlaps", ["gfocal"], id="nanodet-bbox_overlaps"),
    pytest.param(NANODET, "distance2bbox", "distance2bbox", ["gfocal"], id="nanodet-distance2bbox"),
    pytest.param(GFOCAL, "weight_reduce", "weight_reduce_loss", ["mmdet3"], id="gfocal-reduce"),
    pytest.param(GFOCAL, "bbox2distance", "bbox2distance", ["ultralytics"], id="gfocal-b2d"),
]


@pytest.mark.parametrize(("adapter", "piece", "name", "differs"), KIT_CASES)
def test_the_kit_identifies_the_adapter(adapter, piece, name, differs):
    """``reference.testing.identify`` finds each adapter's own dialect among those it
    agrees with, and tells it apart from a dialect that differs on the piece's switch."""
    from reference.testing import identify
    from reference.testing.pair_pieces import PAIR_SPECS

    f = getattr(adapter, name)
    kw = {"forward": f} if piece in PAIR_SPECS else {"fn": f}
    found = identify(piece, array_type="torch", max_examples=10, **kw)
    assert adapter.DIALECT in found.agrees, str(found)
    assert set(differs) <= set(found.differs), str(found)


# --- the whole kit on the examples, as `gfl-conformance` runs it --------------------------


def test_the_docs_port_has_its_planted_bug_found():
    """docs/conformance.md's worked example: the QFL that takes ``label > 0`` as positive is
    caught, on the shrunk input of one anchor of one class labelled 1 (the background)."""
    from reference.testing.conformance import run

    result = run(str(EXAMPLES / "ported_head.py"), pieces=["qfl"])
    assert not result.passed
    first = result.reports["qfl"].failures[0]
    assert first.prop == "forward matches the reference" and "IndexError" in first.message
    assert first.inputs["pred"].shape == (1, 1) and first.inputs["label"].tolist() == [1]
    grad = next(f for f in result.reports["qfl"].failures if "reference backward" in f.prop)
    assert grad.inputs["label"].tolist() == [0]  # class 0 is trained as a negative
    assert np.sign(grad.expected[0]) == -np.sign(grad.got[0])


def test_the_fixed_port_passes_everything():
    from reference.testing.conformance import run

    result = run(str(EXAMPLES / "ported_head.py") + ":fixed", max_examples=10)
    assert result.passed, result.table()
    assert len(result.reports) == 6


@pytest.mark.parametrize(
    ("adapter", "pieces"),
    [("gfocal_adapter", ["qfl", "distance2bbox", "bbox_overlaps"]),
     ("nanodet_adapter", ["qfl", "grid_anchors", "bbox_overlaps", "distance2bbox"])],
)  # fmt: skip
def test_each_example_is_identified_as_its_own_dialect(adapter, pieces):
    """The adapters pass their own dialect, and ``--identify`` names it (and no other dialect
    of the mmdetection family) as the one agreeing on every piece it defines."""
    from reference.testing.conformance import run

    module = _load(adapter)
    result = run(str(EXAMPLES / f"{adapter}.py"), dialect=module.DIALECT, pieces=pieces,
                 max_examples=10, identify=True)  # fmt: skip
    assert result.passed, result.table()
    agreeing = result.agreeing_dialects()
    assert agreeing[0] == module.DIALECT, result.table()
    assert not {"mmdet2", "mmdet3", "gfocal", "nanodet"} - {module.DIALECT} & set(agreeing)


def test_torch_impl_conforms_to_mmdet2():
    """This project's own torch implementation, through the command's code path: all pass."""
    from reference.testing.conformance import run

    result = run("torch_impl", max_examples=8)
    assert result.passed, result.table()
    assert not result.skipped and len(result.reports) == 16
