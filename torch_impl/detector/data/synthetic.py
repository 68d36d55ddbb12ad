"""A procedurally generated detection data set, deterministic by seed.

Six object classes, each with its own shape and a preferred colour and
texture (a preference, not a rule: a quarter of the objects take a random hue
and 40 % a random texture, so the shape is what decides the class):

========  ============  ==========  ==========
class     shape         hue         texture
========  ============  ==========  ==========
circle    disc/ellipse  red         solid
square    rectangle     blue        stripes
triangle  triangle      green       gradient
star      5-point star  yellow      solid
cross     plus sign     purple      checker
ring      annulus       cyan        dots
========  ============  ==========  ==========

Objects are rotated, stretched, from ``min_object_size`` (8 px) to half the
image (log-uniform), may overlap (every object keeps at least 55 % of its area
visible), and share the image with clutter that belongs to no class (thin
lines, polylines, arcs, speckle) on varied backgrounds (flat, gradients,
smooth noise, stripes, checkerboards, pixel noise). Edges are anti-aliased
from signed distance functions; a box is the tight pixel extent of the whole
(amodal) shape.

Image ``i`` of a split is a pure function of ``(seed, split, i)``: it is
generated on the fly, in any order, in any process, and is always the same.
"""

from __future__ import annotations

import functools
import math
import zlib
from typing import NamedTuple

import numpy as np

from reference.validation import check_choice, check_scalar

__all__ = ["CLASS_NAMES", "SPLITS", "Sample", "SyntheticDetection", "render_image"]

CLASS_NAMES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross", "ring")
#: The splits, each its own random stream.
SPLITS = ("train", "val", "test")

_BASE_HUE = (0.0, 0.62, 0.33, 0.14, 0.80, 0.50)
_TEXTURES = ("solid", "stripes", "checker", "dots", "gradient", "speckle")
_CLASS_TEXTURE = ("solid", "stripes", "gradient", "solid", "checker", "dots")


class Sample(NamedTuple):
    """One image and its annotations, as every data set here returns them.

    Attributes
    ----------
    image : ndarray, shape (H, W, 3), uint8
        The network input (already resized and padded for COCO images).
    boxes : ndarray, shape (K, 4), float32
        ``(x1, y1, x2, y2)`` in ``image`` pixels.
    labels : ndarray, shape (K,), int64
        Class indices ``0 … C-1``.
    areas : ndarray, shape (K,), float32
        Object areas in original-image pixels (COCO's ``area``).
    image_id : int
        The COCO image id.
    meta : dict
        ``img_shape (h, w)`` (the resized image before padding), ``pad_shape
        (H, W)``, ``scale_factor`` (4 floats ``(w, h, w, h)``) and
        ``ori_shape (h, w)``.
    """

    image: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    areas: np.ndarray
    image_id: int
    meta: dict


# --------------------------------------------------------------------------- colours


def _hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    """One HSV colour (all in [0, 1]) → RGB float32 ``(3,)``."""
    h = (h % 1.0) * 6.0
    i = int(h) % 6
    f = h - int(h)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    rgb = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return np.asarray(rgb, dtype=np.float32)


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    return _hsv_to_rgb(rng.random(), rng.uniform(0.0, 0.9), rng.uniform(0.1, 1.0))


# --------------------------------------------------------------------------- geometry


def _sdf_box(u: np.ndarray, v: np.ndarray, bx: float, by: float) -> np.ndarray:
    """Signed distance to the axis-aligned box of half-extents ``(bx, by)``."""
    qx = np.abs(u) - bx
    qy = np.abs(v) - by
    outside = np.hypot(np.maximum(qx, 0.0), np.maximum(qy, 0.0))
    return outside + np.minimum(np.maximum(qx, qy), 0.0)


def _halfplanes(verts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Outward unit normals ``(K, 2)`` and offsets ``(K,)`` of a convex polygon's edges."""
    e = np.roll(verts, -1, axis=0) - verts
    n = np.stack([e[:, 1], -e[:, 0]], -1)
    n = n / np.linalg.norm(n, axis=1, keepdims=True)
    off = (n * verts).sum(1)
    if np.any(n @ verts.mean(0) - off > 0):  # the centroid must be inside: flip to outward
        n, off = -n, -off
    return n.astype(np.float32), off.astype(np.float32)


def _planes(pieces: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Stacked half-planes of convex pieces, each padded to K planes by repeating its own."""
    planes = [_halfplanes(p) for p in pieces]
    k = max(len(off) for _, off in planes)
    normals = np.concatenate([np.resize(n, (k, 2)) for n, _ in planes])  # (P*K, 2)
    offsets = np.concatenate([np.resize(off, k) for _, off in planes])  # (P*K,)
    return normals.T.copy(), offsets, len(planes), k


def _sdf_convex_union(u: np.ndarray, v: np.ndarray, planes: tuple) -> np.ndarray:
    """Signed distance (exact inside, close outside) to a union of convex pieces."""
    normals_t, offsets, p, k = planes
    d = u.ravel()[None, :] * normals_t[0][:, None] + v.ravel()[None, :] * normals_t[1][:, None]
    d = (d - offsets[:, None]).reshape(p, k, -1)  # (P, K, N)
    return d.max(axis=1).min(axis=0).reshape(u.shape)


@functools.lru_cache(maxsize=64)
def _star_planes(inner_milli: int) -> tuple:
    """A 5-point star of inner radius ``inner_milli / 1000``: its pentagon and five kites.

    The kites reach the centre, so they overlap the pentagon and the union has no seams.
    """
    star = _regular_polygon(5, inner_milli / 1000)
    centre = np.zeros((1, 2), np.float32)
    kites = [np.concatenate([star[[(2 * k - 1) % 10, 2 * k, 2 * k + 1]], centre]) for k in range(5)]
    return _planes([star[1::2], *kites])


def _regular_polygon(k: int, inner: float | None = None) -> np.ndarray:
    """Vertices of a regular k-gon (or a k-point star) of circumradius 1, pointing up."""
    if inner is None:
        ang = -np.pi / 2 + 2 * np.pi * np.arange(k) / k
        return np.stack([np.cos(ang), np.sin(ang)], -1).astype(np.float32)
    ang = -np.pi / 2 + np.pi * np.arange(2 * k) / k
    rad = np.where(np.arange(2 * k) % 2 == 0, 1.0, inner)
    return np.stack([rad * np.cos(ang), rad * np.sin(ang)], -1).astype(np.float32)


_TRIANGLE = _regular_polygon(3)
_TRIANGLE = _TRIANGLE - (_TRIANGLE.max(0) + _TRIANGLE.min(0)) / 2  # centre its extent
_TRIANGLE_PLANES = _planes([_TRIANGLE * 1.15])


def _shape_sdf(cls: int, u: np.ndarray, v: np.ndarray, rng_param: float) -> np.ndarray:
    """Signed distance (in normalised units) of class ``cls`` at ``(u, v)``.

    Every shape fits in ``[-1, 1]²``; ``rng_param`` in [0, 1] varies it a little
    (star inner radius, cross arm width, ring hole).
    """
    if cls == 0:  # circle / ellipse (stretching is done by the caller)
        return np.hypot(u, v) - 1.0
    if cls == 1:  # square / rectangle
        return _sdf_box(u, v, 1.0, 1.0)
    if cls == 2:  # triangle
        return _sdf_convex_union(u, v, _TRIANGLE_PLANES)
    if cls == 3:  # star, 5 points, inner radius 0.38-0.5
        return _sdf_convex_union(u, v, _star_planes(380 + round(120 * rng_param)))
    if cls == 4:  # cross
        arm = 0.28 + 0.12 * rng_param
        return np.minimum(_sdf_box(u, v, 1.0, arm), _sdf_box(u, v, arm, 1.0))
    if cls == 5:  # ring
        mid = 0.66 + 0.06 * rng_param
        half = 1.0 - mid
        return np.abs(np.hypot(u, v) - mid) - half
    raise ValueError(f"cls must be in [0, {len(CLASS_NAMES)}), got {cls}")


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int, ch: int) -> np.ndarray:
    """Bilinearly upsampled random grid: ``(h, w, ch)`` in [0, 1]."""
    grid = rng.random((cells, cells, ch)).astype(np.float32)
    wy = _interp_matrix(h, cells)  # (h, cells)
    wx = _interp_matrix(w, cells)  # (w, cells)
    return np.einsum("hc,cdk,wd->hwk", wy, grid, wx, optimize=True)


def _interp_matrix(n: int, cells: int) -> np.ndarray:
    """Linear interpolation weights from ``cells`` knots onto ``n`` samples."""
    pos = np.linspace(0, cells - 1, n, dtype=np.float32)
    lo = np.clip(np.floor(pos).astype(int), 0, cells - 2) if cells > 1 else np.zeros(n, int)
    frac = pos - lo
    m = np.zeros((n, cells), np.float32)
    m[np.arange(n), lo] = 1 - frac
    if cells > 1:
        m[np.arange(n), lo + 1] += frac
    return m


# --------------------------------------------------------------------------- painting


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A varied background, ``(h, w, 3)`` float32 in [0, 1]."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    c1, c2 = _random_colour(rng), _random_colour(rng)
    kind = rng.integers(5)
    if kind == 0:  # flat
        img = np.broadcast_to(c1, (h, w, 3)).copy()
    elif kind == 1:  # linear gradient
        a = rng.uniform(0, 2 * np.pi)
        t = xx * np.cos(a) + yy * np.sin(a)
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
        img = c1 + (c2 - c1) * t[..., None]
    elif kind == 2:  # smooth colour noise
        img = _smooth_noise(rng, h, w, int(rng.integers(2, 7)), 3)
        img = 0.25 + 0.6 * img * rng.uniform(0.4, 1.0) + 0.2 * (c1 - 0.5)
    elif kind == 3:  # soft stripes
        a = rng.uniform(0, np.pi)
        period = rng.uniform(6, 32)
        t = 0.5 + 0.5 * np.sin(2 * np.pi * (xx * np.cos(a) + yy * np.sin(a)) / period)
        c2 = c1 + (c2 - c1) * rng.uniform(0.15, 0.5)
        img = c1 + (c2 - c1) * t[..., None]
    else:  # low-contrast checkerboard
        period = rng.uniform(8, 32)
        t = ((np.floor(xx / period) + np.floor(yy / period)) % 2).astype(np.float32)
        c2 = c1 + (c2 - c1) * rng.uniform(0.1, 0.4)
        img = c1 + (c2 - c1) * t[..., None]
    if rng.random() < 0.5:  # a second, smooth illumination layer
        img = img * (0.7 + 0.6 * _smooth_noise(rng, h, w, 3, 1))
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def _blend(img: np.ndarray, y0: int, x0: int, alpha: np.ndarray, colour: np.ndarray) -> None:
    """Alpha-blend ``colour`` (``(3,)`` or ``(h, w, 3)``) into ``img`` in place."""
    h, w = alpha.shape
    region = img[y0 : y0 + h, x0 : x0 + w]
    region += alpha[..., None] * (colour - region)


def _patch(h: int, w: int, x0: float, y0: float, x1: float, y1: float):
    """Integer window ``[x0, x1) × [y0, y1)`` clipped to the image, with its pixel-centre grid."""
    ix0, iy0 = max(0, int(math.floor(x0))), max(0, int(math.floor(y0)))
    ix1, iy1 = min(w, int(math.ceil(x1))), min(h, int(math.ceil(y1)))
    if ix1 <= ix0 or iy1 <= iy0:
        return None
    yy, xx = np.mgrid[iy0:iy1, ix0:ix1].astype(np.float32) + 0.5
    return ix0, iy0, xx, yy


def _paint_clutter(rng: np.random.Generator, img: np.ndarray, n: int) -> None:
    """Distractors that belong to no class: lines, polylines, arcs, speckle."""
    h, w = img.shape[:2]
    for _ in range(n):
        colour = _random_colour(rng)
        kind = rng.integers(4)
        if kind in (0, 1):  # line or polyline: union of thick segments
            thick = rng.uniform(0.5, 1.4)
            pts = [rng.uniform(0, [w, h])]
            for _ in range(1 if kind == 0 else int(rng.integers(2, 5))):
                step = rng.uniform(8, 0.6 * max(h, w))
                ang = rng.uniform(0, 2 * np.pi)
                pts.append(pts[-1] + step * np.array([np.cos(ang), np.sin(ang)]))
            p = np.asarray(pts)
            win = _patch(h, w, *(p.min(0) - 3), *(p.max(0) + 3))
            if win is None:
                continue
            x0, y0, xx, yy = win
            dist = np.full(xx.shape, np.inf, np.float32)
            for a, b in zip(pts[:-1], pts[1:]):
                e = b - a
                t = np.clip(((xx - a[0]) * e[0] + (yy - a[1]) * e[1]) / float(e @ e), 0, 1)
                dist = np.minimum(dist, np.hypot(xx - a[0] - e[0] * t, yy - a[1] - e[1] * t))
            alpha = np.clip(thick + 0.5 - dist, 0, 1)
        elif kind == 2:  # thin arc
            cx, cy = rng.uniform(0, [w, h])
            r = rng.uniform(4, 0.25 * max(h, w))
            start, span = rng.uniform(0, 2 * np.pi), rng.uniform(0.5, 1.4) * np.pi
            thick = rng.uniform(0.6, 1.2)
            win = _patch(h, w, cx - r - 3, cy - r - 3, cx + r + 3, cy + r + 3)
            if win is None:
                continue
            x0, y0, xx, yy = win
            ang = (np.arctan2(yy - cy, xx - cx) - start) % (2 * np.pi)
            dist = np.abs(np.hypot(xx - cx, yy - cy) - r)
            alpha = np.clip(thick + 0.5 - dist, 0, 1) * (ang < span)
        else:  # speckle: a cluster of small dots
            cx, cy = rng.uniform(0, [w, h])
            k = int(rng.integers(6, 25))
            spread = rng.uniform(3, 14)
            dots = rng.normal([cx, cy], spread, size=(k, 2)).astype(np.float32)
            win = _patch(h, w, *(dots.min(0) - 2), *(dots.max(0) + 2))
            if win is None:
                continue
            x0, y0, xx, yy = win
            d2 = (xx[..., None] - dots[:, 0]) ** 2 + (yy[..., None] - dots[:, 1]) ** 2
            alpha = np.clip(1.3 - np.sqrt(d2.min(-1)), 0, 1)
        _blend(img, y0, x0, alpha.astype(np.float32), colour)


def _texture(
    rng: np.random.Generator, kind: str, u: np.ndarray, v: np.ndarray, scale: float, c: np.ndarray
) -> np.ndarray:
    """The object's colour field ``(h, w, 3)``; ``u, v`` in pixels of the shape's frame."""
    if kind == "solid":
        return np.broadcast_to(c, (*u.shape, 3))
    c2 = c * rng.uniform(0.3, 0.65) if rng.random() < 0.6 else c + (1 - c) * rng.uniform(0.4, 0.8)
    period = rng.uniform(3.0, max(4.0, scale * 0.8))
    if kind == "stripes":
        t = np.sin(2 * np.pi * u / period) > 0
    elif kind == "checker":
        t = (np.floor(u / period) + np.floor(v / period)) % 2 == 1
    elif kind == "dots":
        mu, mv = u % period - period / 2, v % period - period / 2
        t = mu * mu + mv * mv < (period * 0.3) ** 2
    elif kind == "gradient":
        t = np.clip((u / max(scale, 1e-3) + 1) / 2, 0, 1)
    else:  # speckle
        t = rng.random(u.shape) < 0.35
    t = t.astype(np.float32)[..., None]
    return c + (c2 - c) * t


class _Obj(NamedTuple):
    y0: int
    x0: int
    alpha: np.ndarray  # (h, w) coverage of the whole shape
    visible: np.ndarray  # (h, w) coverage not hidden by later objects


def render_image(
    rng: np.random.Generator,
    image_size: int = 128,
    max_objects: int = 8,
    min_object_size: float = 8.0,
    max_object_size: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Draw one synthetic detection image.

    Parameters
    ----------
    rng : numpy.random.Generator
        The only source of randomness.
    image_size : int
        The image is ``image_size × image_size``.
    max_objects : int
        At most this many objects (0 … ``max_objects``, mostly 1 or more).
    min_object_size, max_object_size : float
        Nominal object sizes in pixels, drawn log-uniformly; the maximum
        defaults to half the image.

    Returns
    -------
    image : ndarray, shape (S, S, 3), uint8
    boxes : ndarray, shape (K, 4), float32
        Tight ``(x1, y1, x2, y2)`` pixel extents of each whole object.
    labels : ndarray, shape (K,), int64
    areas : ndarray, shape (K,), float32
        Pixel area of each whole shape (COCO's ``area``).
    """
    size = int(image_size)
    max_size = size / 2 if max_object_size is None else float(max_object_size)
    img = _background(rng, size, size)
    n_clutter = int(rng.integers(0, 7))
    n_behind = int(rng.integers(0, n_clutter + 1))
    _paint_clutter(rng, img, n_behind)

    n_obj = 0 if rng.random() < 0.03 else int(rng.integers(1, max_objects + 1))
    objs: list[_Obj] = []
    labels: list[int] = []
    areas: list[float] = []
    for _ in range(n_obj):
        cls = int(rng.integers(len(CLASS_NAMES)))
        for _attempt in range(6):
            placed = _place_object(rng, img, objs, cls, min_object_size, max_size)
            if placed is not None:
                objs.append(placed)
                labels.append(cls)
                areas.append(float(placed.alpha.sum()))
                break
    _paint_clutter(rng, img, n_clutter - n_behind)
    img += rng.standard_normal(img.shape, dtype=np.float32) * np.float32(rng.uniform(0.0, 0.04))
    image = (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)

    boxes = np.zeros((len(objs), 4), np.float32)
    for k, o in enumerate(objs):
        rows = np.flatnonzero(o.alpha.max(axis=1) >= 0.5)
        cols = np.flatnonzero(o.alpha.max(axis=0) >= 0.5)
        boxes[k] = (o.x0 + cols[0], o.y0 + rows[0], o.x0 + cols[-1] + 1, o.y0 + rows[-1] + 1)
    return image, boxes, np.asarray(labels, np.int64), np.asarray(areas, np.float32)


def _place_object(
    rng: np.random.Generator,
    img: np.ndarray,
    objs: list[_Obj],
    cls: int,
    min_size: float,
    max_size: float,
) -> _Obj | None:
    """Try to paint one object; None (and nothing painted) if it would hide others."""
    pose = _random_pose(rng, img.shape[:2], cls, min_size, max_size)
    if pose is None:
        return None
    x0, y0, pu, pv, half_u, half_v = pose
    d = _shape_sdf(cls, pu / half_u, pv / half_v, rng.random()) * min(half_u, half_v)
    alpha = np.clip(0.5 - d, 0.0, 1.0).astype(np.float32)
    if alpha.max() < 0.5 or not _occlude(objs, alpha, y0, x0):
        return None
    under = img[y0 : y0 + alpha.shape[0], x0 : x0 + alpha.shape[1]]
    colour = _object_colour(rng, cls, under[alpha >= 0.5].mean(axis=0))
    tex = _CLASS_TEXTURE[cls] if rng.random() < 0.6 else _TEXTURES[int(rng.integers(6))]
    field = _texture(rng, tex, pu, pv, min(half_u, half_v), colour)
    _blend(img, y0, x0, alpha, field)
    return _Obj(y0, x0, alpha, alpha.copy())


class _Pose(NamedTuple):
    x0: int  # the object's square window in the image: its top-left corner
    y0: int
    pu: np.ndarray  # (2r, 2r) the window's pixel centres in the shape's frame (pixels)
    pv: np.ndarray
    half_u: float  # the shape's half extents along u and v (pixels)
    half_v: float


def _random_pose(
    rng: np.random.Generator,
    shape: tuple[int, int],
    cls: int,
    min_size: float,
    max_size: float,
) -> _Pose | None:
    """A random size, stretch, rotation and position; None if the object cannot fit."""
    h, w = shape
    diameter = math.exp(rng.uniform(math.log(min_size), math.log(max_size)))
    aspect = math.exp(rng.uniform(-0.35, 0.35)) if cls in (0, 1) else 1.0
    angle = rng.uniform(0, 2 * np.pi) if cls != 5 else 0.0
    half_u = diameter / 2 * math.sqrt(aspect)
    half_v = diameter / 2 / math.sqrt(aspect)
    if cls == 1:  # a square's half-diagonal is the reach; keep its extent near the size
        half_u, half_v = half_u / 1.2, half_v / 1.2
    reach = math.ceil(math.hypot(half_u, half_v) * 1.2) + 1
    if 2 * reach >= min(h, w):
        return None
    cx = rng.uniform(reach, w - reach)
    cy = rng.uniform(reach, h - reach)
    x0, y0 = int(cx) - reach, int(cy) - reach
    x0, y0 = max(0, min(x0, w - 2 * reach)), max(0, min(y0, h - 2 * reach))
    yy, xx = np.mgrid[y0 : y0 + 2 * reach, x0 : x0 + 2 * reach].astype(np.float32) + 0.5
    ca, sa = math.cos(angle), math.sin(angle)
    pu = (xx - cx) * ca + (yy - cy) * sa  # pixels, shape frame
    pv = -(xx - cx) * sa + (yy - cy) * ca
    return _Pose(x0, y0, pu, pv, half_u, half_v)


def _occlude(objs: list[_Obj], alpha: np.ndarray, y0: int, x0: int) -> bool:
    """Cover the earlier objects with a new one at ``(y0, x0)``, unless that would hide one.

    Every earlier object must keep >= 55 % of its area visible; if one would
    not, nothing changes and the answer is False.
    """
    new_visible = []
    for o in objs:
        oy0, ox0 = o.y0, o.x0
        oh, ow = o.alpha.shape
        iy0, iy1 = max(oy0, y0), min(oy0 + oh, y0 + alpha.shape[0])
        ix0, ix1 = max(ox0, x0), min(ox0 + ow, x0 + alpha.shape[1])
        if iy0 >= iy1 or ix0 >= ix1:
            new_visible.append(None)
            continue
        vis = o.visible.copy()
        cover = alpha[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0]
        vis[iy0 - oy0 : iy1 - oy0, ix0 - ox0 : ix1 - ox0] *= 1.0 - cover
        if vis.sum() < 0.55 * o.alpha.sum():
            return False
        new_visible.append(vis)
    for k, vis in enumerate(new_visible):
        if vis is not None:
            objs[k] = objs[k]._replace(visible=vis)
    return True


def _object_colour(rng: np.random.Generator, cls: int, bg_mean: np.ndarray) -> np.ndarray:
    """The class hue most of the time, always distinct from ``bg_mean``, what lies beneath."""
    base = _BASE_HUE[cls] if rng.random() < 0.75 else rng.random()
    colour = _hsv_to_rgb(base + rng.uniform(-0.06, 0.06), rng.uniform(0.45, 1.0), 1.0)
    colour = colour * rng.uniform(0.45, 1.0)
    for _ in range(4):
        if float(np.abs(colour - bg_mean).sum()) >= 0.45:
            break
        colour = _hsv_to_rgb(base + rng.uniform(-0.06, 0.06), rng.uniform(0.45, 1.0), 1.0)
        colour = colour * rng.uniform(0.45, 1.0)
    else:
        colour = np.where(bg_mean > 0.5, colour * 0.3, 1 - (1 - colour) * 0.3)
    return colour


class SyntheticDetection:
    """The synthetic detection data set: ``len`` images, each generated on demand.

    Parameters
    ----------
    num_images : int
        Number of images in this split.
    image_size : int
        Side of the square images (≥ 32).
    seed : int
        Master seed; image ``i`` depends only on ``(seed, split, i)``.
    split : {"train", "val", "test"}
        Different splits draw from disjoint random streams.
    max_objects : int
        At most this many objects per image.
    min_object_size : float
        Smallest nominal object size in pixels (the largest is half the image).
    cache : bool
        Keep generated samples in memory (for a training set reused over epochs).

    Examples
    --------
    >>> ds = SyntheticDetection(4, image_size=64, seed=1)
    >>> s = ds[0]
    >>> s.image.shape, s.boxes.shape[1]
    ((64, 64, 3), 4)
    """

    class_names: tuple[str, ...] = CLASS_NAMES

    def __init__(
        self,
        num_images: int,
        image_size: int = 128,
        seed: int = 0,
        split: str = "train",
        max_objects: int = 8,
        min_object_size: float = 8.0,
        cache: bool = False,
    ) -> None:
        self.num_images = check_scalar(num_images, "num_images", low=0, integer=True)
        self.image_size = check_scalar(image_size, "image_size", low=32, integer=True)
        self.seed = check_scalar(seed, "seed", low=0, integer=True)
        self.split = check_choice(split, "split", SPLITS)
        self.max_objects = check_scalar(max_objects, "max_objects", low=0, integer=True)
        self.min_object_size = check_scalar(
            min_object_size, "min_object_size", low=2.0, high=self.image_size / 2
        )
        self.cache = bool(cache)
        self._cache: dict[int, Sample] = {}

    def __len__(self) -> int:
        return self.num_images

    def __getitem__(self, index: int) -> Sample:
        if not -self.num_images <= index < self.num_images:
            raise IndexError(f"index must be in [0, {self.num_images}), got {index}")
        index = index % self.num_images
        if index in self._cache:
            return self._cache[index]
        rng = np.random.default_rng([self.seed, zlib.crc32(self.split.encode()), index])
        image, boxes, labels, areas = render_image(
            rng, self.image_size, self.max_objects, self.min_object_size
        )
        s = self.image_size
        meta = {
            "img_shape": (s, s),
            "pad_shape": (s, s),
            "ori_shape": (s, s),
            "scale_factor": (1.0, 1.0, 1.0, 1.0),
        }
        sample = Sample(image, boxes, labels, areas, index + 1, meta)
        if self.cache:
            self._cache[index] = sample
        return sample
