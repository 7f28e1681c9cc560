"""numpy's own limits on shapes, checked before numpy is asked to allocate or broadcast.

The wire and the shape rules allow shapes that numpy cannot hold: more than 64 dimensions, a
dimension or a byte size past int64 (even for a tensor with no elements: numpy multiplies the
non-zero dimensions), and more than 32 dimensions where numpy broadcasts several arrays
together. Every inferred shape and every decoded wire tensor passes `check_shape`, so such a
request is a 413 naming its node instead of a numpy error deep in a run.
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.errors import TooLarge

# numpy's NPY_MAXDIMS: no ndarray has more dimensions.
MAX_NDIM = 64
# np.broadcast (behind broadcast_shapes, and so every multi-input shape rule) takes at most 32.
MAX_BROADCAST_NDIM = 32
# numpy sizes are signed 64-bit (npy_intp on the platforms we run on).
MAX_INTP = 2**63 - 1
FLOAT64_BYTES = 8


def check_shape(
    shape: Sequence[int],
    node: str | None,
    *,
    itemsize: int = FLOAT64_BYTES,
    broadcast: bool = False,
) -> None:
    """Raise TooLarge (naming `node`) unless numpy can hold an array of `shape`.

    `broadcast` applies numpy's tighter limit on arrays broadcast together.
    """
    if broadcast and len(shape) > MAX_BROADCAST_NDIM:
        raise TooLarge(
            f"node '{node}' broadcasts an input of {len(shape)} dimensions; numpy broadcasts "
            f"at most {MAX_BROADCAST_NDIM}",
            node,
        )
    if len(shape) > MAX_NDIM:
        raise TooLarge(
            f"{_where(node)} has {len(shape)} dimensions; numpy holds at most {MAX_NDIM}", node
        )
    nbytes = itemsize
    for n in shape:
        if n > MAX_INTP:
            raise TooLarge(f"{_where(node)} has dimension {n}, past numpy's int64 sizes", node)
        # numpy skips zero dimensions but still refuses a product of the others past int64
        nbytes *= n or 1
    if nbytes > MAX_INTP:
        raise TooLarge(
            f"{_where(node)} of shape {list(shape)} would need {nbytes} bytes, past numpy's "
            f"int64 sizes",
            node,
        )


def _where(node: str | None) -> str:
    return f"the value of node '{node}'" if node is not None else "a tensor"
