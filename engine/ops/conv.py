"""Convolution and pooling over images (N, C, H, W) (catalog 1.1): conv2d and max_pool2d.

No Python loop runs over pixels or channels. conv2d reads its (padded) input as windows
(`sliding_window_view`), copies them once into columns (N, C*KH*KW, H'*W') and multiplies by
the filters per image; backward, the gradient of each window element goes back to the pixel it
was read from. max_pool2d, and that way back, loop over the offsets inside a window (KH x KW
steps), each step one strided numpy operation over every image, channel and window at once;
overlapping windows add up there.

Every function here takes images with any leading axes (N, C, H, W or B, N, C, H, W) and
filters with or without a leading batch axis, so the batching rules are the rows' own
functions: a batched operand is told apart by its rank.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from engine.errors import BadAttr, ShapeMismatch
from engine.ops.base import Attr, Batched, Op, Shape


def _out_size(size: int, window: int, stride: int) -> int:
    """Windows that fit along one axis (PyTorch's floor mode: a partial window is dropped)."""
    return (size - window) // stride + 1


def _windows(x, size: tuple[int, int], stride: int):
    """(..., H', W', KH, KW): window (i, j) of every image and channel, as a strided view."""
    return sliding_window_view(x, size, axis=(-2, -1))[..., ::stride, ::stride, :, :]


def _at_offset(i: int, j: int, rows: int, cols: int, stride: int) -> tuple:
    """The index of element (i, j) of every window, for windows laid out rows x cols."""
    return (Ellipsis, slice(i, i + stride * (rows - 1) + 1, stride),
            slice(j, j + stride * (cols - 1) + 1, stride))


# Windows of at most this many elements are walked offset by offset (one strided numpy step
# per offset, fast for the usual 2x2 and 3x3); larger ones in one go, without a Python loop
# whose length the request would decide.
MAX_OFFSET_STEPS = 64


def _add_windows(grad_windows, shape: Shape, stride: int) -> np.ndarray:
    """Sum gradients given per window element (..., H', W', KH, KW) into images of `shape`."""
    rows, cols, kh, kw = grad_windows.shape[-4:]
    if kh * kw > MAX_OFFSET_STEPS:
        return _add_windows_at_once(grad_windows, shape, stride)
    grad = np.zeros(shape)
    for i in range(kh):
        for j in range(kw):
            grad[_at_offset(i, j, rows, cols, stride)] += grad_windows[..., i, j]
    return grad


def _add_windows_at_once(grad_windows, shape: Shape, stride: int) -> np.ndarray:
    """`_add_windows` as one bincount over the flat position every window element came from."""
    rows, cols, kh, kw = grad_windows.shape[-4:]
    height, width = shape[-2:]
    planes = math.prod(shape[:-2])
    row = (np.arange(rows) * stride)[:, None, None, None] + np.arange(kh)[None, None, :, None]
    col = (np.arange(cols) * stride)[None, :, None, None] + np.arange(kw)[None, None, None, :]
    plane = (row * width + col).reshape(-1)  # one image and channel: (H', W', KH, KW) flat
    where = ((np.arange(planes) * height * width)[:, None] + plane[None, :]).reshape(-1)
    sums = np.bincount(where, weights=np.reshape(grad_windows, -1),
                       minlength=planes * height * width)
    return sums.reshape(shape)


def _check_positive(attrs: Mapping[str, Any], names: tuple[str, ...], node: str) -> None:
    for name in names:
        if attrs[name] is not None and attrs[name] < 1:
            raise BadAttr(f"{name} must be at least 1, got {attrs[name]}", node)


def _check_images(shape: Shape, what: str, node: str) -> None:
    if len(shape) != 4:
        raise ShapeMismatch(f"{what} must be 4-d (N, C, H, W), got {list(shape)}", node)


# ---------------------------------------------------------------- conv2d

def _conv2d_shape(shapes: list[Shape], attrs: dict, node: str) -> Shape:
    x, w = shapes
    _check_images(x, "conv2d's input", node)
    if len(w) != 4:
        raise ShapeMismatch(f"conv2d's filters must be 4-d (F, C, KH, KW), got {list(w)}", node)
    if x[1] != w[1]:
        raise ShapeMismatch(f"conv2d: the input has {x[1]} channels, the filters {w[1]}", node)
    _check_positive(attrs, ("stride",), node)
    padding = attrs["padding"]
    if padding < 0:
        raise BadAttr(f"padding must be at least 0, got {padding}", node)
    height, width = x[2] + 2 * padding, x[3] + 2 * padding
    if w[2] == 0 or w[3] == 0:
        raise ShapeMismatch(f"conv2d's filters must be at least 1x1, got {w[2]}x{w[3]}", node)
    if w[2] > height or w[3] > width:
        raise BadAttr(f"a {w[2]}x{w[3]} filter is larger than the padded {height}x{width} "
                      "input", node)
    stride = attrs["stride"]
    return (x[0], w[0], _out_size(height, w[2], stride), _out_size(width, w[3], stride))


def _conv2d_work(shapes: list[Shape], attrs: dict) -> int:
    """The larger of the padded input and its windows as columns (N, C*KH*KW, H'*W'), which
    forward and both gradients hold."""
    (n, c, h, w), (f, _, kh, kw) = shapes
    padding, stride = attrs["padding"], attrs["stride"]
    height, width = h + 2 * padding, w + 2 * padding
    windows = _out_size(height, kh, stride) * _out_size(width, kw, stride) * kh * kw
    return n * c * max(height * width, windows)


def _padded(x, padding: int):
    if not padding:
        return x
    return np.pad(x, [(0, 0)] * (x.ndim - 2) + [(padding, padding)] * 2)


def _columns(x, kernel: tuple[int, int], stride: int, padding: int):
    """The windows as columns (..., N, C*KH*KW, H'*W') (one copy: im2col), and (H', W')."""
    windows = _windows(_padded(x, padding), kernel, stride)
    *lead, c, rows, cols, kh, kw = windows.shape
    # (..., C, H', W', KH, KW) -> (..., C, KH, KW, H', W')
    columns = np.moveaxis(windows, (-4, -3), (-2, -1))
    return columns.reshape(*lead, c * kh * kw, rows * cols), (rows, cols)


def _filter_rows(w):
    """Filters as rows (F, C*KH*KW), or (B, 1, F, C*KH*KW) for a batch of filter sets (the 1
    lines them up with the images' N)."""
    if w.ndim == 4:
        return w.reshape(len(w), math.prod(w.shape[1:]))  # sizes spelled out: F may be 0
    return w.reshape(len(w), 1, w.shape[1], math.prod(w.shape[2:]))


def _conv2d(x, w, *, stride, padding):
    columns, out_size = _columns(x, w.shape[-2:], stride, padding)
    # one (F, C*KH*KW) @ (C*KH*KW, H'*W') product per image: the result is already (N, F, ...)
    out = np.matmul(_filter_rows(w), columns)
    return out.reshape(*out.shape[:-1], *out_size)


def _conv2d_vjp(g, out, x, w, *, stride, padding, needs=(True, True)):
    g_flat = np.reshape(g, (*g.shape[:-2], g.shape[-2] * g.shape[-1]))  # (..., N, F, H'*W')
    dx = dw = None
    if needs[0]:
        # each window element's gradient, (..., N, C*KH*KW, H'*W'), sent back to its pixel
        per_element = np.matmul(np.swapaxes(_filter_rows(w), -1, -2), g_flat)
        if per_element.ndim > x.ndim - 1:  # one x for a batch of filter sets: add them up
            per_element = per_element.sum(axis=0)
        c, (kh, kw), (rows, cols) = x.shape[-3], w.shape[-2:], g.shape[-2:]
        per_element = per_element.reshape(*x.shape[:-3], c, kh, kw, rows, cols)
        padded_shape = (*x.shape[:-2], x.shape[-2] + 2 * padding, x.shape[-1] + 2 * padding)
        dx = _add_windows(np.moveaxis(per_element, (-4, -3), (-2, -1)), padded_shape, stride)
        dx = dx[..., padding : padding + x.shape[-2], padding : padding + x.shape[-1]]
    if needs[1]:
        columns, _ = _columns(x, w.shape[-2:], stride, padding)
        per_image = np.matmul(g_flat, np.swapaxes(columns, -1, -2))  # (..., N, F, C*KH*KW)
        # summed over the images, and over the points too unless w has a batch of its own
        summed = -3 if w.ndim == 5 else tuple(range(per_image.ndim - 2))
        dw = per_image.sum(axis=summed).reshape(w.shape)
    return (dx, dw)


def _conv2d_batching(batched: tuple[bool, bool], shapes: list[Shape], attrs: dict) -> Batched:
    return Batched(forward=_conv2d, vjp=_conv2d_vjp, attrs=attrs, vjp_takes_needs=True)


def _conv2d_label(attrs: Mapping[str, Any], number: Callable[[float], str]) -> str | None:
    stride, padding = attrs.get("stride", 1), attrs.get("padding", 0)
    extras = [f"s{stride}" if stride != 1 else "", f"p{padding}" if padding else ""]
    return " ".join(["conv", *filter(None, extras)])


# ---------------------------------------------------------------- max_pool2d

def _pool_stride(attrs: Mapping[str, Any]) -> int:
    return attrs["size"] if attrs["stride"] is None else attrs["stride"]


def _max_pool2d_shape(shapes: list[Shape], attrs: dict, node: str) -> Shape:
    (x,) = shapes
    _check_images(x, "max_pool2d's input", node)
    _check_positive(attrs, ("size", "stride"), node)
    size = attrs["size"]
    if size > x[2] or size > x[3]:
        raise BadAttr(f"a {size}x{size} window is larger than the {x[2]}x{x[3]} input", node)
    stride = _pool_stride(attrs)
    return (x[0], x[1], _out_size(x[2], size, stride), _out_size(x[3], size, stride))


def _max_pool2d_work(shapes: list[Shape], attrs: dict) -> int:
    """Every window element: what the pooling reads (and, for large windows, holds)."""
    (n, c, h, w) = shapes[0]
    size, stride = attrs["size"], _pool_stride(attrs)
    return n * c * _out_size(h, size, stride) * _out_size(w, size, stride) * size * size


def _pool_places(size: int, step: int, rows: int, cols: int) -> list[tuple]:
    return [_at_offset(i, j, rows, cols, step) for i in range(size) for j in range(size)]


def _max_pool2d(x, *, size, stride):
    step = _pool_stride({"size": size, "stride": stride})
    if size * size > MAX_OFFSET_STEPS:
        return _windows(x, (size, size), step).max(axis=(-2, -1))
    rows, cols = _out_size(x.shape[-2], size, step), _out_size(x.shape[-1], size, step)
    places = _pool_places(size, step, rows, cols)
    # the max over the offsets (i, j) of the windows' (i, j) elements: each step one
    # elementwise maximum over all images, channels and windows
    out = x[places[0]].copy()
    for place in places[1:]:
        np.maximum(out, x[place], out=out)
    return out


def _max_pool2d_vjp(g, out, x, *, size, stride):
    step = _pool_stride({"size": size, "stride": stride})
    if size * size > MAX_OFFSET_STEPS:
        hits = _windows(x, (size, size), step) == out[..., np.newaxis, np.newaxis]
        share = g / np.sum(hits, axis=(-2, -1))  # ties split equally, as max's rule does
        return (_add_windows(hits * share[..., np.newaxis, np.newaxis], x.shape, step),)
    places = _pool_places(size, step, *out.shape[-2:])
    share = g / sum((x[place] == out) * 1.0 for place in places)
    grad = np.zeros(x.shape)
    for place in places:  # overlapping windows add up
        grad[place] += (x[place] == out) * share
    return (grad,)


def _max_pool2d_batching(batched: tuple[bool], shapes: list[Shape], attrs: dict) -> Batched:
    return Batched(forward=_max_pool2d, vjp=_max_pool2d_vjp, attrs=attrs)


def _pool_label(attrs: Mapping[str, Any], number: Callable[[float], str]) -> str | None:
    size = attrs.get("size")
    if size is None:
        return None
    stride = attrs.get("stride")
    return f"maxpool {size}" + ("" if stride is None or stride == size else f" s{stride}")


ROWS: tuple[Op, ...] = (
    Op(name="conv2d", arity=(2, 2), symbol="conv",
       doc="x (N, C, H, W) correlated with filters w (F, C, KH, KW) -> (N, F, H', W'), "
           "as PyTorch's conv2d without bias",
       attrs=(Attr("stride", "int", 1), Attr("padding", "int", 0)),
       infer_shape=_conv2d_shape, forward=_conv2d, vjp=_conv2d_vjp, vjp_takes_needs=True,
       label=_conv2d_label, work_size=_conv2d_work, batch=_conv2d_batching),
    Op(name="max_pool2d", arity=(1, 1), symbol="maxpool",
       doc="max over size x size windows of (N, C, H, W), stride defaulting to size, no "
           "padding, floor mode; ties split the gradient",
       attrs=(Attr("size", "int"), Attr("stride", "int_or_null", None)),
       infer_shape=_max_pool2d_shape, forward=_max_pool2d, vjp=_max_pool2d_vjp,
       label=_pool_label, work_size=_max_pool2d_work, batch=_max_pool2d_batching),
)
