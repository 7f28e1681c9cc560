"""Finite-difference cases for the ops of catalog 1.1, merged into the gradient suite's table.

Same form as that table: op -> list of (input shapes, attrs, domain). Values are at least 0.5
away from 0 (see `_values` there), so leaky_relu's, clip's and max's kinks are never crossed.
"""

from __future__ import annotations

SHAPES = [(), (4,), (3, 4), (1, 4)]
AXIS_VARIANTS = [({"axis": 0}, (3, 4)), ({"axis": -1, "keepdims": True}, (3, 4)),
                 ({"axis": [0, 1]}, (3, 4)), ({"axis": 0, "keepdims": True}, (1, 4)),
                 ({"axis": [0, 2]}, (2, 3, 4))]


def _everywhere(attrs: dict, domain: str = "any") -> list:
    return [([s], attrs, domain) for s in SHAPES]


def _reduction_cases(extra: dict | None = None) -> list:
    extra = extra or {}
    return _everywhere(extra) + [([shape], {**attrs, **extra}, "any")
                                 for attrs, shape in AXIS_VARIANTS]


V11_CASES: dict[str, list] = {
    "sin": _everywhere({}),
    "cos": _everywhere({}),
    "log1p": _everywhere({}, "positive"),
    "softplus": _everywhere({}),
    "gelu": _everywhere({}),
    "leaky_relu": _everywhere({}) + _everywhere({"slope": 0.2}),
    "clip": _everywhere({"lo": -1.0, "hi": 1.0}) + _everywhere({"hi": 0.8})
    + [([(3, 4)], {}, "any")],
    "amax": _reduction_cases(),
    "amin": _reduction_cases(),
    "logsumexp": _reduction_cases(),
    "var": _reduction_cases() + [([(3, 4)], {"axis": 1, "ddof": 1}, "any"),
                                 ([(4,)], {"ddof": 1}, "any")],
    "concat": [([(4,)], {}, "any"), ([(3, 4), (2, 4)], {}, "any"),
               ([(3, 4), (3, 1), (3, 2)], {"axis": 1}, "any"),
               ([(1, 4), (1, 4)], {"axis": -1}, "any")],
    "stack": [([(), ()], {}, "any"), ([(4,), (4,)], {"axis": 1}, "any"),
              ([(3, 4), (3, 4), (3, 4)], {"axis": -1}, "any"), ([(1, 4)], {}, "any")],
    "slice": [([()], {"slices": []}, "any"), ([(4,)], {"slices": [[1, None]]}, "any"),
              ([(3, 4)], {"slices": [[None, None, -1], [0, 4, 2]]}, "any"),
              ([(3, 4)], {"slices": [1, [-3, None]]}, "any"), ([(1, 4)], {"slices": [0]}, "any")],
    "take": [([(4,)], {"indices": [0, 3, 3, -1]}, "any"),
             ([(3, 4)], {"indices": [[2, 0], [2, 2]]}, "any"),
             ([(3, 4)], {"indices": 1, "axis": 1}, "any"),
             ([(1, 4)], {"indices": [0, 0], "axis": 0}, "any")],
    "broadcast_to": [([()], {"shape": [3]}, "any"), ([(4,)], {"shape": [3, 4]}, "any"),
                     ([(1, 4)], {"shape": [2, 3, 4]}, "any"), ([(3, 4)], {"shape": [3, 4]}, "any")],
    "cross_entropy": [([(3, 4)], {"targets": [0, 3, 1]}, "any"),
                      ([(3, 4)], {"targets": [2, 2, 0], "reduction": "sum"}, "any"),
                      ([(1, 4)], {"targets": [3], "reduction": "none"}, "any")],
    "conv2d": [([(2, 3, 8, 8), (4, 3, 3, 3)], {}, "any"),
               ([(2, 3, 8, 8), (4, 3, 3, 3)], {"stride": 2, "padding": 1}, "any"),
               ([(1, 2, 5, 6), (3, 2, 2, 3)], {"stride": 3}, "any"),
               ([(1, 1, 4, 4), (1, 1, 4, 4)], {"padding": 2}, "any"),
               # filters of more than 64 elements: the window gradients added in one go
               ([(1, 2, 10, 11), (2, 2, 9, 9)], {"padding": 1, "stride": 2}, "any")],
    "max_pool2d": [([(2, 3, 8, 8)], {"size": 2}, "any"),
                   ([(2, 3, 7, 9)], {"size": 3, "stride": 2}, "any"),
                   ([(1, 2, 5, 5)], {"size": 2, "stride": 1}, "any"),
                   ([(1, 2, 10, 11)], {"size": 9, "stride": 1}, "any")],
}
