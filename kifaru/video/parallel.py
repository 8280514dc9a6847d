"""Loading many clips in worker processes while the caller does something else (runs a model).

Each worker process holds one :class:`FrameLoader` (and so one detector) for the whole run. Results
come back as they complete; every path gets exactly one :class:`ClipResult`: its frames, or a
failure saying at which stage and why. A clip that crashes its worker process (a decoder bug on a
damaged file) does not stop the run: the pool is restarted, the clips that were in flight are
retried one at a time, and the one that crashes again alone is recorded as a failure.
"""

from __future__ import annotations

import os
import signal
import warnings
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import numpy as np

from kifaru.config.video import VideoLoaderConfig
from kifaru.failures import STAGE_FRAMES, STAGE_WORKER, read_failure
from kifaru.memory import release_freed_memory
from kifaru.processes import spawn_context



@dataclass
class ClipResult:
    """One clip's outcome: ``frames`` (T, H, W, 3) uint8 and what they are, or a failure."""

    index: int  # position in the list of paths given
    path: Path
    frames: Optional[np.ndarray] = None
    source_indices: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # warnings: partial decodes, selection fallbacks
    failure_stage: Optional[str] = None
    failure_reason: Optional[str] = None

    @property
    def failed(self) -> bool:
        return self.failure_stage is not None


def load_clip(loader: Any, index: int, path: Path) -> ClipResult:
    """Load one clip with ``loader`` (a :class:`FrameLoader`); never raises for a bad file."""
    from kifaru.video.loader import NO_FRAME

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            loaded = loader.load(path)
    except Exception as error:  # one file must never stop a weekend's run: record it, go on
        failure = read_failure(error)
        return ClipResult(index, path, failure_stage=failure.stage, failure_reason=failure.reason)
    notes = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    if NO_FRAME in loaded.source_indices or len(loaded.frames) == 0:
        # Never predict from frames that were not read (zamba would use zeros).
        reason = next((n for n in reversed(notes) if "no frame was selected" in n), "no frame was selected")
        return ClipResult(index, path, notes=notes, failure_stage=STAGE_FRAMES, failure_reason=reason)
    return ClipResult(index, path, frames=loaded.frames, source_indices=list(loaded.source_indices), notes=notes)


# -- worker processes -----------------------------------------------------------------------

_worker_loader: Any = None


def _make_loader(config: VideoLoaderConfig, detector_weights: Optional[Path], detector_device: Optional[str]) -> Any:
    from kifaru.video.loader import FrameLoader

    detector = None
    if config.megadetector_lite_config is not None and detector_weights is not None:
        from kifaru.detection.megadetector_lite import load_megadetector_lite

        detector = load_megadetector_lite(detector_weights, device=detector_device or config.megadetector_lite_config.device)
    return FrameLoader(config, detector=detector)


def _init_worker(config_json: dict, detector_weights: Optional[str], detector_device: Optional[str]) -> None:
    global _worker_loader
    # Ctrl-C reaches the whole process group: the main process decides what happens.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # PyTorch is imported here only if the detector must fall back to it (or export to ONNX once):
    # one thread each, as every worker runs beside the others and the model.
    os.environ["OMP_NUM_THREADS"] = "1"
    config = VideoLoaderConfig.model_validate(config_json)
    _worker_loader = _make_loader(config, Path(detector_weights) if detector_weights else None, detector_device)


def _load_in_worker(index: int, path: str) -> ClipResult:
    # The previous clip's frames (tens of MB, freed once sent) would otherwise stay with the allocator.
    release_freed_memory()
    return load_clip(_worker_loader, index, Path(path))


class ClipLoader:
    """Loads clips in ``num_workers`` processes (0: in this process), results as they complete.

    ``detector_weights`` and ``detector_device``: the MegadetectorLite weights and device the
    workers use, resolved once by the caller (so that no worker downloads anything, and a worker
    on the CPU never imports PyTorch to look for a GPU).
    """

    def __init__(
        self,
        config: VideoLoaderConfig,
        num_workers: int,
        detector_weights: Optional[Path] = None,
        detector_device: Optional[str] = None,
    ) -> None:
        self.config = config
        self.num_workers = num_workers
        self.detector_weights = detector_weights
        self.detector_device = detector_device
        self._pool: Optional[ProcessPoolExecutor] = None
        self._local_loader: Any = None
        if num_workers > 0:
            self._pool = self._start_pool()

    def _start_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            self.num_workers,
            mp_context=spawn_context(),
            initializer=_init_worker,
            initargs=(
                self.config.model_dump(mode="json"),
                str(self.detector_weights) if self.detector_weights else None,
                self.detector_device,
            ),
        )

    def close(self, wait: bool = True) -> None:
        """Stop the workers; ``wait`` False: without waiting for the clips they are reading."""
        if self._pool is not None:
            self._pool.shutdown(wait=wait, cancel_futures=True)
            self._pool = None
        if self._local_loader is not None:
            self._local_loader.close()

    def __enter__(self) -> "ClipLoader":
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        # Stopped by an error or Ctrl-C/SIGTERM: the caller writes what is finished at once (a
        # scheduler's SIGKILL follows its SIGTERM within seconds), not after the clips in flight.
        self.close(wait=exc_type is None)

    def load(self, paths: Sequence[tuple[int, Path]]) -> Iterator[ClipResult]:
        """One result per (index, path), in the order they complete."""
        if self._pool is None:
            yield from self._load_here(paths)
        else:
            yield from self._load_in_workers(paths)

    def _load_here(self, paths: Sequence[tuple[int, Path]]) -> Iterator[ClipResult]:
        if self._local_loader is None:
            self._local_loader = _make_loader(self.config, self.detector_weights, self.detector_device)
        for index, path in paths:
            yield load_clip(self._local_loader, index, path)

    def _load_in_workers(self, paths: Sequence[tuple[int, Path]]) -> Iterator[ClipResult]:
        queue = deque(paths)
        suspects: deque[tuple[int, Path]] = deque()  # in flight when a worker died: retried alone
        running: dict[Future, tuple[int, Path]] = {}
        alone: set[Future] = set()  # submitted with nothing else in flight
        # Enough work queued to keep every worker busy, not so much that decoded clips pile up.
        window = 2 * self.num_workers
        while queue or suspects or running:
            if suspects:
                if not running:
                    item = suspects.popleft()
                    future = self._pool.submit(_load_in_worker, item[0], str(item[1]))
                    running[future] = item
                    alone.add(future)
            else:
                while queue and len(running) < window:
                    item = queue.popleft()
                    running[self._pool.submit(_load_in_worker, item[0], str(item[1]))] = item
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            broken = False
            for future in done:
                item = running.pop(future)
                try:
                    yield future.result()
                except BrokenProcessPool:
                    broken = True
                    if future in alone:
                        yield ClipResult(
                            item[0],
                            item[1],
                            failure_stage=STAGE_WORKER,
                            failure_reason="reading it crashed the worker process (a damaged file or a decoder bug)",
                        )
                    else:
                        suspects.append(item)
                alone.discard(future)
            if broken:
                suspects.extend(running.values())
                running.clear()
                alone.clear()
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = self._start_pool()
