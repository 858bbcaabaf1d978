"""Where a training step's time goes, measured inside a real run (``train.py --profile-steps N``).

A run on the lent GPU has minutes, not a spare call for a separate profile: this profiles N steps of the run
itself, after a few warm-up steps, and writes the operators ranked by their own time to ``profile.txt``.
"""
from __future__ import annotations

import logging
from pathlib import Path

from torch.profiler import ProfilerActivity, profile, schedule

log = logging.getLogger(__name__)


class StepProfiler:
    """Call ``step()`` once at the end of every training step; steps ``skip .. skip + count - 1`` are profiled."""

    def __init__(self, out: Path, count: int, device_type: str, skip: int = 5, rows: int = 40):
        self.out, self.rows = Path(out), rows
        on_gpu = device_type == "cuda"
        self.sort = "self_cuda_time_total" if on_gpu else "self_cpu_time_total"
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_gpu else [])
        self.profiler = None
        if count > 0:
            self.profiler = profile(activities=activities, on_trace_ready=self._write,
                                    schedule=schedule(wait=max(0, skip - 1), warmup=1, active=count, repeat=1))
            self.profiler.start()

    def _write(self, prof) -> None:
        table = prof.key_averages().table(sort_by=self.sort, row_limit=self.rows)
        path = self.out / "profile.txt"
        path.write_text(f"operators by {self.sort} over the profiled steps\n{table}\n")
        log.info("step profile written to %s; top operators:\n%s", path, "\n".join(table.splitlines()[:14]))

    def step(self) -> None:
        if self.profiler is not None:
            self.profiler.step()

    def close(self) -> None:
        if self.profiler is not None:
            self.profiler.stop()
            self.profiler = None
