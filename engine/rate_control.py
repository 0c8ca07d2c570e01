"""Rate control at compress time: pick the codec quality that meets a rate or quality target.

Targets (any combination):

* ``bpppc``: the file (header included) lands at or under this many bits per pixel per component;
  with no quality target, the best quality that fits is chosen.
* ``min_psnr``: every tile's PSNR (peak: the scene's valid data range, as ``hsic eval``) is at least this;
* ``max_sam``: every tile's mean spectral angle (degrees) is at most this.

With a quality target, the cheapest quality meeting it is chosen (and it must also fit ``bpppc`` when
that is given too). Each candidate quality is really encoded (and, for quality targets, decoded
and measured) - rates and errors are measured, never predicted. The search assumes what every codec
promises: a higher quality never costs fewer bits. It does not assume that quality improves
monotonically (SAM does not always), so quality targets are checked one quality at a time, cheapest
first, while a pure rate target uses bisection.

A codec with a continuous rate (``continuous_rate``, e.g. ``klt``) is searched over its quantiser step
instead (:func:`choose_step`): ``bpppc`` alone lands within ``RATE_TOLERANCE`` below the target, a PSNR or
SAM target gets the coarsest step (fewest bits) that meets it, to within ``STEP_PRECISION``. A pure rate
target is steered by estimates (sampled tiles coded, or the codec's rate model on smaller scenes) and checked
on written files (:func:`step_for_rate`): the file kept is always measured.

One quality serves the whole file: the container header records one codec, quality and weights
digest for all tiles (docs/format.md), so per-tile quality would need a format change and a decoder
that holds several models at once; it is not offered.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from typing import Callable

import numpy as np

from engine import metrics
from engine.errors import InputError
from engine.format.container import Header
from engine.normalise import valid_mask
from engine.pipeline import (DEFAULT_TILE, Progress, ReadWindow, SceneDecoder, SceneInfo, ScenePass, check_progress,
                             compress_scene, estimate_bytes, model_estimate, sample_tiles, scene_range)
from engine.registry import codec_class, get_info
from engine.tiling import TileGrid


RATE_TOLERANCE = 0.03  # a pure rate target lands in [1 - this, 1] x bpppc (continuous-rate codecs)
STEP_PRECISION = 1.03  # a quality target's step search stops when its bracket is this narrow (ratio)
MAX_STEP_TRIALS = 16
# A rate search whose bracket is this narrow (step ratio) and still has no file in the band straddles a jump of
# the rate (one more KLT component kept): the rate moves about 1.5 % over such a bracket, the band is 3 %.
JUMP_PRECISION = 1.01


class TargetNotMetError(InputError):
    """No quality of the codec meets the requested rate or quality target."""


@dataclass(frozen=True)
class Target:
    bpppc: float | None = None
    min_psnr: float | None = None
    max_sam: float | None = None

    def __post_init__(self):
        for name in ("bpppc", "min_psnr", "max_sam"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))
                                  or not math.isfinite(v) or v <= 0):
                raise InputError(f"{name} must be a positive number, got {v!r}")
        if self.empty:
            raise InputError("a target needs at least one of bpppc, min_psnr, max_sam")

    @property
    def empty(self) -> bool:
        return self.bpppc is None and self.min_psnr is None and self.max_sam is None

    @property
    def needs_quality(self) -> bool:
        """True when tiles must be decoded and measured (a PSNR or SAM target)."""
        return self.min_psnr is not None or self.max_sam is not None

    def describe(self) -> str:
        parts = []
        if self.bpppc is not None:
            parts.append(f"<= {self.bpppc:g} bpppc")
        if self.min_psnr is not None:
            parts.append(f"PSNR >= {self.min_psnr:g} dB on every tile")
        if self.max_sam is not None:
            parts.append(f"SAM <= {self.max_sam:g} deg on every tile")
        return ", ".join(parts)


@dataclass(frozen=True)
class Trial:
    """What one quality really gave: the file's rate and the worst tile's PSNR and SAM (None if not measured)."""

    quality: int
    bpppc: float
    min_tile_psnr: float | None = None
    max_tile_sam: float | None = None
    step: float | None = None  # the quantiser step of a continuous-rate codec's trial

    def fits_rate(self, t: Target) -> bool:
        return t.bpppc is None or self.bpppc <= t.bpppc

    def meets_quality(self, t: Target) -> bool:
        return ((t.min_psnr is None or self.min_tile_psnr >= t.min_psnr)
                and (t.max_sam is None or self.max_tile_sam <= t.max_sam))

    def describe(self) -> str:
        s = (f"step {self.step:.4g}" if self.step is not None else f"q{self.quality}") + f": {self.bpppc:.4f} bpppc"
        if self.min_tile_psnr is not None:
            s += f", worst tile {self.min_tile_psnr:.2f} dB"
        if self.max_tile_sam is not None:
            s += f", {self.max_tile_sam:.2f} deg"
        return s


def choose_quality(qualities, trial: Callable[[int], Trial], target: Target) -> tuple[int, list[Trial]]:
    """The quality meeting ``target`` (see module doc) and the trials made; TargetNotMetError if none does.

    ``trial(q)`` encodes (and measures) quality ``q``; it is called as few times as the search allows.
    """
    qs = sorted(qualities)
    done: dict[int, Trial] = {}

    def run(q: int) -> Trial:
        if q not in done:
            done[q] = trial(q)
        return done[q]

    tried = lambda: [done[q] for q in sorted(done)]  # noqa: E731
    if target.needs_quality:
        for q in qs:  # cheapest first: the first quality that meets the target is the cheapest one
            t = run(q)
            if not t.fits_rate(target):
                break  # a higher quality costs at least as much
            if t.meets_quality(target):
                return q, tried()
    else:
        lo, hi, best = 0, len(qs) - 1, None  # bisection for the highest quality that fits the rate
        while lo <= hi:
            mid = (lo + hi) // 2
            if run(qs[mid]).fits_rate(target):
                best, lo = qs[mid], mid + 1
            else:
                hi = mid - 1
        if best is not None:
            return best, tried()
    raise TargetNotMetError(f"no quality meets the target ({target.describe()}); tried "
                            + "; ".join(t.describe() for t in tried()))


def choose_step(trial: Callable[[float], Trial], target: Target, start: float, lo: float,
                hi: float, tolerance: float = RATE_TOLERANCE, known: list[Trial] = ()) -> tuple[float, list[Trial]]:
    """The quantiser step in [lo, hi] meeting ``target`` (see module doc) and the trials made.

    Assumes what a quantiser gives: a coarser step never costs more bits nor gives better quality.
    Pure rate: the finest step that fits, by regula falsi in log step against log rate (a few trials).
    Quality: the coarsest step that meets it, by bisection in log step; then it must fit ``bpppc`` too.
    TargetNotMetError if no step does. ``known``: trials made before (not made again, and they bracket).
    """
    done: dict[float, Trial] = {t.step: t for t in known}

    def run(s: float) -> Trial:
        s = min(hi, max(lo, s))
        if s not in done:
            done[s] = trial(s)
        return done[s]

    def tried() -> list[Trial]:
        return [done[s] for s in sorted(done)]

    def fail() -> TargetNotMetError:
        return TargetNotMetError(f"no quantiser step meets the target ({target.describe()}); tried "
                                 + "; ".join(t.describe() for t in tried()))

    quality = target.needs_quality
    meets = (lambda t: t.meets_quality(target)) if quality else (lambda t: t.fits_rate(target))
    good = bad = None  # trials that meet / miss the criterion, nearest to the boundary found so far

    def classify(t: Trial) -> None:
        nonlocal good, bad
        if meets(t):  # quality: coarser is better (fewer bits); rate: finer is better (more quality)
            if good is None or (t.step > good.step if quality else t.step < good.step):
                good = t
        elif bad is None or (t.step < bad.step if quality else t.step > bad.step):
            bad = t

    for t in known:
        classify(t)
    t = run(start)
    moved = []  # which end of the bracket each trial replaced
    for _ in range(MAX_STEP_TRIALS):
        moved.append(meets(t))
        classify(t)
        if not quality and good is not None and good.bpppc >= (1 - tolerance) * target.bpppc:
            break
        if good is not None and bad is not None:
            if max(good.step, bad.step) <= min(good.step, bad.step) * (STEP_PRECISION if quality else JUMP_PRECISION):
                break
            if quality:
                nxt = math.sqrt(good.step * bad.step)
            else:  # interpolate log step at the log target rate between the bracket's two trials
                ra, rb = math.log(good.bpppc), math.log(bad.bpppc)
                f = (math.log(target.bpppc * (1 - tolerance / 2)) - ra) / (rb - ra) if rb != ra else 0.5
                if len(moved) >= 2 and moved[-1] == moved[-2]:
                    f = 0.5  # the same end moved twice: the rate jumps in the bracket (k changes), bisect
                nxt = math.exp(math.log(good.step) + min(0.9, max(0.1, f)) * math.log(bad.step / good.step))
        elif quality:
            nxt = t.step * (4.0 if good is not None else 0.25)
        else:  # rate ~ log(1/step) per component: move by the rate's ratio, at most 8x a trial
            nxt = t.step * min(8.0, max(1 / 8, (t.bpppc / (target.bpppc * (1 - tolerance / 2))) ** 1.5))
        if min(hi, max(lo, nxt)) == t.step:
            break  # the end of the range
        t = run(nxt)
    if good is None or not good.fits_rate(target):
        raise fail()
    return good.step, tried()


ESTIMATE_ROUNDS = 3  # searches on estimated rates, each checked (and the estimate recalibrated) by one file
# Estimates pay when a sample is at most 1 / ESTIMATE_SHARE of the tiles: a rate search codes about 3 files either
# way (measured on a 16-tile scene, estimates from 10 tiles cost more than they saved).
ESTIMATE_SHARE = 8


def step_for_rate(trial: Callable[[float], Trial], estimate: Callable[[float], float], target: Target,
                  start: float, lo: float, hi: float) -> tuple[float, list[Trial]]:
    """A pure rate target's step, searched on cheap estimates and checked on files (see :func:`choose_step`).

    ``estimate(step)`` is a rate without writing a file (a sample of tiles coded); its ratio to the rate of
    the file ``trial`` wrote at the same step corrects the next search. The band accepted on estimates is
    narrower than RATE_TOLERANCE and sits inside it, so a calibrated estimate lands the file in it; if
    ESTIMATE_ROUNDS files miss, the search goes on over files only (those made count). Returns the step and
    the files' trials.
    """
    narrow = Target(bpppc=target.bpppc * (1 - RATE_TOLERANCE / 4))
    memo: dict[float, float] = {}

    def raw(s: float) -> float:
        if s not in memo:
            memo[s] = estimate(s)
        return memo[s]

    files: list[Trial] = []
    scale, s = 1.0, start
    for _ in range(ESTIMATE_ROUNDS):
        try:
            s, _ = choose_step(lambda st: Trial(0, raw(st) * scale, step=st), narrow, s, lo, hi, RATE_TOLERANCE / 2)
        except TargetNotMetError:
            break
        if any(t.step == s for t in files):
            break  # the estimates lead back to a file made already: search the files
        t = trial(s)
        files.append(t)
        if t.fits_rate(target) and t.bpppc >= (1 - RATE_TOLERANCE) * target.bpppc:
            return s, files
        scale = t.bpppc / raw(s)
    return choose_step(trial, target, s, lo, hi, known=files)


def measure_tiles(path: str, read_window: ReadWindow, data_range: float, device: str = "auto",
                  progress: Progress | None = None) -> tuple[float, float]:
    """(lowest tile PSNR, highest tile mean SAM) of a .hsic file against its source, tile by tile.

    Tiles with no valid sample are skipped; a tile decoded perfectly has PSNR inf, SAM 0.
    """
    dec = SceneDecoder(path, device=device, cache_bytes=0)
    worst_psnr, worst_sam = math.inf, 0.0
    try:
        nodata = dec.header.nodata
        for i, (y0, x0, h, w) in enumerate(dec.grid.windows()):
            ref = np.asarray(read_window(y0, x0, h, w), dtype=np.float64)
            rec = dec.tile(i).astype(np.float64)
            valid = valid_mask(ref, nodata)
            if valid.any():
                worst_psnr = min(worst_psnr, metrics.psnr(ref, rec, data_range=data_range, valid=valid))
                sam = metrics.sam_deg(ref, rec, valid)
                if not math.isnan(sam):
                    worst_sam = max(worst_sam, sam)
            check_progress(progress, (i + 1) / dec.grid.n_tiles)
    finally:
        dec.close()
    return worst_psnr, worst_sam


def compress_to_target(info: SceneInfo, read_window: ReadWindow, dst: str, codec: str, target: Target,
                       device: str = "auto", tile_size: int = DEFAULT_TILE,
                       progress: Progress | None = None) -> tuple[Header, list[Trial]]:
    """Compress into ``dst`` at the quality chosen for ``target``; returns the header and the trials.

    Every trial is a complete file written beside ``dst``; the chosen one is renamed to ``dst`` and the
    others removed, so ``dst`` never holds a file that does not meet the target (nor a partial one).
    """
    cinfo = get_info(codec)
    qs = sorted(cinfo.qualities)
    continuous = codec_class(codec).continuous_rate
    data_range = 1.0
    if target.needs_quality:
        grid = TileGrid(info.rows, info.cols, min(tile_size, info.rows), min(tile_size, info.cols))
        lo, hi = scene_range(info, read_window, grid)
        data_range = hi - lo if np.isfinite(hi - lo) and hi > lo else 1.0
    scene_pass = ScenePass()  # the range and scene statistics, read once for all trials
    paths: dict = {}  # by quality, or by step for a continuous-rate codec
    headers: dict = {}
    # An upper bound of the work, for progress only.
    steps = (MAX_STEP_TRIALS if continuous else len(qs)) * (2 if target.needs_quality else 1)
    step = 0

    def scaled(fraction: float):
        return None if progress is None else progress(min(1.0, (step + fraction) / steps))

    def trial(key) -> Trial:
        nonlocal step
        q, s = (cinfo.default_quality, key) if continuous else (key, None)
        path = f"{dst}.{'s%.6g' % s if continuous else 'q%d' % q}.trial"
        paths[key] = path
        headers[key] = compress_scene(info, read_window, path, codec, q, device=device, tile_size=tile_size,
                                      progress=scaled, step=s, scene_pass=scene_pass)
        step += 1
        rate = metrics.bpppc(os.path.getsize(path), info.rows, info.cols, info.bands)
        if not target.needs_quality:
            return Trial(q, rate, step=s)
        if not continuous and target.bpppc is not None and rate > target.bpppc:
            return Trial(q, rate)  # too big anyway: no need to decode and measure it
        psnr, sam = measure_tiles(path, read_window, data_range, device, scaled)
        step += 1
        return Trial(q, rate, psnr, sam, step=s)

    try:
        if continuous:
            cls = codec_class(codec)
            start = cls.preset_step(cinfo.default_quality)
            n_tiles = TileGrid(info.rows, info.cols, min(tile_size, info.rows), min(tile_size, info.cols)).n_tiles
            estimate = None  # a quality target is searched on files only
            if not target.needs_quality:
                if len(sample_tiles(n_tiles)) * ESTIMATE_SHARE <= n_tiles:  # a sample costs much less than a file
                    estimate = functools.partial(estimate_bytes, info, read_window, codec, cinfo.default_quality,
                                                 scene_pass=scene_pass, tile_size=tile_size, device=device)
                else:  # a smaller scene: the codec's rate model, if it has one
                    estimate = model_estimate(info, read_window, codec, cinfo.default_quality, scene_pass,
                                              tile_size, device)
            if estimate is None:
                key, trials = choose_step(trial, target, start, *cls.step_range)
            else:
                def rate(s: float) -> float:
                    return metrics.bpppc(max(1, math.ceil(estimate(s))), info.rows, info.cols, info.bands)

                key, trials = step_for_rate(trial, rate, target, start, *cls.step_range)
        else:
            key, trials = choose_quality(qs, trial, target)
        os.replace(paths.pop(key), dst)
        return headers[key], trials
    finally:
        _discard(paths.values())


def _discard(trial_paths) -> None:
    """Remove the trial files that were not kept."""
    for p in trial_paths:
        if os.path.exists(p):
            os.remove(p)


def compress_bounded(info: SceneInfo, read_window: ReadWindow, dst: str, codec: str, max_abs_error: float,
                     device: str = "auto", tile_size: int = DEFAULT_TILE,
                     progress: Progress | None = None) -> tuple[Header, list[Trial]]:
    """Error-bounded compression (engine/residual.py) into ``dst`` with the cheapest base setting.

    The residual's cost depends on how good a predictor the codec's reconstruction is, and the best
    step differs from scene to scene (measured on train/ scenes: docs/benchmarks/klt_error_bounded.json):
    for a continuous-rate codec each quality's preset step is tried and the smallest file kept; other
    codecs are coded once at their default quality. Returns the header and the trials (sizes).
    """
    cls = codec_class(codec)
    if not cls.continuous_rate:
        header = compress_scene(info, read_window, dst, codec, None, device=device, tile_size=tile_size,
                                progress=progress, max_abs_error=max_abs_error)
        return header, []
    qs = sorted(cls.info.qualities)
    paths: dict[int, str] = {}
    headers: dict[int, Header] = {}
    trials: list[Trial] = []
    try:
        for n, q in enumerate(qs):
            paths[q] = f"{dst}.q{q}.trial"
            headers[q] = compress_scene(
                info, read_window, paths[q], codec, q, device=device, tile_size=tile_size, max_abs_error=max_abs_error,
                progress=None if progress is None else lambda f, n=n: progress((n + f) / len(qs)))
            trials.append(Trial(q, metrics.bpppc(os.path.getsize(paths[q]), info.rows, info.cols, info.bands)))
        best = min(trials, key=lambda t: t.bpppc).quality
        os.replace(paths.pop(best), dst)
        return headers[best], trials
    finally:
        _discard(paths.values())
