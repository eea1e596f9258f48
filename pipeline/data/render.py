"""Render a whole split with a factor, in seeded chunks across processes.

Chunks have a fixed size and each gets its own generator derived from
(seed, factor, split, chunk index), so the output is byte-identical whatever
the number of workers.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
from rich.progress import Progress

from pipeline.factors import render
from pipeline.io import rng_for
from pipeline.params import PerturbParams


def _single_thread() -> None:
    # Two BLAS threads per process while another process runs were measured
    # several times slower than one: give every worker exactly one.
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


@dataclass(frozen=True)
class RenderJob:
    """One fixed-size chunk of a split, as sent to a worker process."""

    factor: str
    images: np.ndarray  # (n, 28, 28) uint8
    params: PerturbParams
    seed: int
    split: str
    index: int  # the chunk's position, which seeds its generator


def _render_chunk(job: RenderJob) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return render(job.factor, job.images, job.params, rng_for(job.seed, "render", job.factor, job.split, job.index))


def render_split(
    factor: str,
    images: np.ndarray,
    params: PerturbParams,
    seed: int,
    split: str,
    workers: int = 1,
    progress: Progress | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(absent, present, green) for every image of (N, 28, 28) uint8 `images`."""
    size = params.chunk_size
    jobs = [
        RenderJob(factor, images[i : i + size], params, seed, split, i // size) for i in range(0, len(images), size)
    ]
    task = progress.add_task(f"{factor}: {split}", total=len(images)) if progress else None
    results = []

    def done(chunk):
        results.append(chunk)
        if progress:
            progress.advance(task, len(chunk[0]))

    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), initializer=_single_thread) as pool:
            for chunk in pool.map(_render_chunk, jobs):
                done(chunk)
    else:
        for job in jobs:
            done(_render_chunk(job))
    if not results:
        empty = np.zeros((0,) + images.shape[1:] + (3,), np.uint8)
        return empty, empty.copy(), np.zeros(0, bool)
    absent, present, green = (np.concatenate(parts) for parts in zip(*results, strict=True))
    return absent, present, green
