"""Workload profiles: what each GPU is asked to do, as vectorized utilization targets (percent)."""

from __future__ import annotations

import numpy as np

#: Profile names in code order (the hall keeps one small int code per GPU).
PROFILES: tuple[str, ...] = ("idle", "training", "inference", "burn")
CODE = {name: i for i, name in enumerate(PROFILES)}

CHECKPOINT_PERIOD_S = 300.0  # a training job writes a checkpoint every 5 minutes ...
CHECKPOINT_DIP_S = 15.0  # ... and its GPUs wait on storage for ~15 s
INFERENCE_SWITCH_S = 12.0  # mean time between busy/quiet switches of an inference GPU


class Workloads:
    """Utilization targets per GPU for every profile; draws its randomness from the hall's RNG."""

    def __init__(self, n_gpus: int, rack_of_gpu: np.ndarray, rng: np.random.Generator) -> None:
        self.n = n_gpus
        # synchronous jobs: the GPUs of one rack checkpoint together, racks at different times
        n_racks = int(rack_of_gpu.max()) + 1 if n_gpus else 0
        self.checkpoint_offset_s = rng.uniform(0, CHECKPOINT_PERIOD_S, n_racks)[rack_of_gpu] if n_gpus else np.zeros(0)
        self.busy = rng.random(n_gpus) < 0.5
        self.busy_level = rng.uniform(60, 90, n_gpus)

    def targets(self, t_s: float, dt_s: float, rng: np.random.Generator) -> np.ndarray:
        """(len(PROFILES), n) utilization targets at ``t_s``; column i of row p is GPU i under profile p."""
        n = self.n
        noise = rng.standard_normal((2, n))
        out = np.empty((len(PROFILES), n))
        out[CODE["idle"]] = 0.0
        dip = ((t_s + self.checkpoint_offset_s) % CHECKPOINT_PERIOD_S) < CHECKPOINT_DIP_S
        out[CODE["training"]] = np.where(dip, 6.0 + noise[0], 96.5 + 1.5 * noise[0])
        flip = rng.random(n) < (1.0 - np.exp(-dt_s / INFERENCE_SWITCH_S))
        self.busy ^= flip
        self.busy_level = np.where(flip, rng.uniform(60, 95, n), self.busy_level)
        out[CODE["inference"]] = np.where(self.busy, self.busy_level, 18.0) + 4.0 * noise[1]
        out[CODE["burn"]] = 100.0
        np.clip(out, 0.0, 100.0, out=out)
        return out
