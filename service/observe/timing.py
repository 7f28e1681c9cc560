"""Wall time per stage of one request, reported in the Server-Timing response header.

Stages nest; each reports its own time, excluding the stages inside it. A stage timed again
right after itself reports once, the two times added (the body's fingerprints: its bytes' hash,
then its skeleton's).
"""

from __future__ import annotations

import time
from types import TracebackType


class StageTimer:
    """Collects (stage, seconds) pairs: `with timer("parse"): ...`."""

    __slots__ = ("stages", "_open")

    def __init__(self) -> None:
        self.stages: list[tuple[str, float]] = []
        self._open: list[list] = []  # [name, started, seconds spent in nested stages]

    def __call__(self, name: str) -> StageTimer:
        self._open.append([name, 0.0, 0.0])
        return self

    def __enter__(self) -> StageTimer:
        self._open[-1][1] = time.perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        name, started, nested = self._open.pop()
        elapsed = time.perf_counter() - started
        stages = self.stages
        if stages and stages[-1][0] == name:
            stages[-1] = (name, stages[-1][1] + elapsed - nested)
        else:
            stages.append((name, elapsed - nested))
        if self._open:
            self._open[-1][2] += elapsed

    def server_timing(self) -> str:
        """The Server-Timing header value, durations in milliseconds."""
        return ", ".join(f"{name};dur={seconds * 1000:.3f}" for name, seconds in self.stages)
