"""Wall-clock timing of a run and of the phases of one step."""

from __future__ import annotations

import time


class StepTimer:
    """The seconds of one step, by phase: ``lap(name)`` charges the time since the previous lap (or since
    the step began) to ``name``."""

    def __init__(self) -> None:
        self.began = self.mark = time.perf_counter()
        self.phases: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.phases[name] = self.phases.get(name, 0.0) + now - self.mark
        self.mark = now

    @property
    def seconds(self) -> float:
        """Since the step began."""
        return time.perf_counter() - self.began


class RunClock:
    """The wall time of a run: its earlier sessions' (``before``, from a checkpoint) and this one's."""

    def __init__(self, before: float = 0.0) -> None:
        self.before = before
        self.began = time.perf_counter()

    def seconds(self) -> float:
        return self.before + time.perf_counter() - self.began
