"""``Translate``: compress a raster to .hsic (with its sidecar), or decode a .hsic to GeoTIFF."""

from __future__ import annotations

import os
from typing import Callable

from engine.errors import HSICError, HSICIOError, InputError
from engine.format.container import partial_name
from engine.pipeline import DEFAULT_TILE, SceneInfo, compress_scene
from engine.rate_control import Target, compress_bounded, compress_to_target
from engine.residual import check_max_abs_error
from engine.registry import DEFAULT_CODEC, get_info
from hsi_gdal.dataset import Dataset, Open
from hsi_gdal.gdal_env import GDAL_TYPES, cache_limit, collect_errors, gdal
from hsi_gdal.sidecar import commit_pair, tiled_statistics
from hsi_gdal.source import HsicSource, RasterSource
from hsi_gdal.writers import (ENVI_EXTENSIONS, WINDOW, copy_band_metadata, copy_georeferencing, write_envi,
                              write_windows)

Progress = Callable[[float], "bool | None"]


def _src_path(src) -> str:
    if isinstance(src, Dataset):
        return src.path
    if isinstance(src, (str, os.PathLike)):
        return os.fspath(src)
    raise TypeError(f"source must be a path or an hsi_gdal dataset, not {type(src).__name__}")


def _check_dst(dst: str, src: str) -> None:
    folder = os.path.dirname(os.path.abspath(dst))
    if not os.path.isdir(folder):
        raise HSICIOError(f"{dst}: folder {folder} does not exist")
    if os.path.abspath(dst) == os.path.abspath(src):
        raise InputError(f"{dst}: output would overwrite the input")


def Translate(destName, srcDSOrSrcDSName, codec: str | None = None, quality: int | None = None,
              device: str = "auto", progress: Progress | None = None, tile_size: int = DEFAULT_TILE,
              weights: str | None = None, bpppc: float | None = None, min_psnr: float | None = None,
              max_sam: float | None = None, max_abs_error: float | None = None) -> Dataset:
    """Convert like ``gdal.Translate``, choosing the direction from the destination's extension.

    * ``*.hsic``: compress any GDAL raster (or .hsic) with ``codec`` at ``quality`` and write the
      sidecar ``*.hsic.vrt`` that GDAL and QGIS open as a georeferenced raster.
    * ``*.tif`` / ``*.tiff``: decode (or copy) to a DEFLATE GeoTIFF with all metadata.
    * ``*.img`` / ``*.bsq`` / ``*.dat``: decode (or copy) to ENVI BSQ, wavelength/fwhm/bbl in the .hdr.

    ``progress(fraction)`` is called per tile; returning False cancels (CancelledError, no output left).
    ``weights``: a user's weights file (``hsic train``) to compress with, or to decode with when it is
    neither at the path recorded in the file nor beside it.
    Rate control (instead of ``quality``): ``bpppc`` (the file lands at or under it), ``min_psnr`` (dB) and
    ``max_sam`` (degrees) on every tile pick the codec's quality; see :mod:`engine.rate_control`.
    ``max_abs_error``: error-bounded mode, every valid sample decodes within this of the source in
    source units (0: lossless), whatever the quality; see :mod:`engine.residual`.
    Returns the output opened with :func:`Open`.
    """
    dst = os.fspath(destName)
    src = _src_path(srcDSOrSrcDSName)
    _check_dst(dst, src)
    ext = os.path.splitext(dst)[1].lower()
    if ext == ".hsic":
        target = check_rate_options(quality, bpppc, min_psnr, max_sam, max_abs_error)
        source = _open_source(src, device)
        check_spectral(src, source.info)
        checked = get_info(codec or DEFAULT_CODEC)  # a wrong codec or quality fails before the source is read
        if quality is not None:
            checked.check_quality(quality)
        info = source.info
        # Every pass over the source streams under GDAL's cache limit: uncapped, the first pass (the
        # sidecar's statistics) filled GDAL's cache (5 % of RAM) and the process kept the memory
        # (docs/benchmarks/scale_klt.md).
        with cache_limit():
            # Statistics for the sidecar (not the .hsic, whose every byte counts in the rate): a first share
            # of the progress bar, cancellable like the rest.
            stats = tiled_statistics(info.rows, info.cols, info.bands, info.nodata, source.read_window,
                                     tile_size, tile_size, _share(progress, 0.0, STATISTICS_SHARE))
            progress = _share(progress, STATISTICS_SHARE, 1.0)
            # Written under a name unique to this run, then renamed with its sidecar (hsi_gdal/sidecar.py):
            # a concurrent run on the same output or a full disk never leaves a corrupt or half pair.
            written = partial_name(dst)
            try:
                header = _compress(info, source.read_window, written, codec, quality, device, progress,
                                   tile_size, weights, target, max_abs_error)
            except BaseException as e:
                if os.path.exists(written):
                    os.remove(written)
                if isinstance(e, HSICIOError):  # name the user's output, not the temporary file
                    raise HSICIOError(str(e).replace(written, dst)) from e
                raise
        commit_pair(written, dst, header, stats)
    elif ext in (".tif", ".tiff") or ext in ENVI_EXTENSIONS:
        if codec is not None or quality is not None or any(v is not None for v in (bpppc, min_psnr, max_sam,
                                                                                   max_abs_error)):
            raise InputError("codec, quality, targets and max_abs_error apply to .hsic outputs only")
        writer = _write_geotiff if ext in (".tif", ".tiff") else write_envi
        ds = Open(src, device=device, weights=weights)
        if getattr(ds, "tile_size", None) and all(WINDOW % t == 0 for t in ds.tile_size):
            # The writer's windows hold whole tiles: each is decoded once, so a tile cache only costs
            # memory (about 500 MB of peak measured on a 1000 x 1000 x 224 scene with the default cache).
            ds.set_cache_bytes(0)
        with cache_limit():
            writer(dst, ds, progress)
    else:
        raise InputError(f"{dst}: unknown output type {ext or '(none)'}; use .hsic to compress, "
                         ".tif (GeoTIFF) or .img/.bsq/.dat (ENVI) to decode")
    return Open(dst, device=device)


def _compress(info, read_window, dst, codec, quality, device, progress, tile_size, weights, target, max_abs_error):
    """Compress a scene into ``dst`` at a quality or for a target; returns the header written."""
    codec = codec or DEFAULT_CODEC
    if target is not None:
        if weights is not None:
            raise InputError("a rate or quality target chooses among the installed qualities; "
                             "it cannot be combined with your own weights file")
        return compress_to_target(info, read_window, dst, codec, target, device=device, tile_size=tile_size,
                                  progress=progress)[0]
    if max_abs_error is not None and quality is None and weights is None:
        # the base setting that codes cheapest under the bound
        return compress_bounded(info, read_window, dst, codec, max_abs_error, device=device,
                                tile_size=tile_size, progress=progress)[0]
    return compress_scene(info, read_window, dst, codec, quality, device=device, tile_size=tile_size,
                          progress=progress, weights=weights, max_abs_error=max_abs_error)


def check_rate_options(quality: int | None = None, bpppc: float | None = None, min_psnr: float | None = None,
                       max_sam: float | None = None, max_abs_error: float | None = None) -> Target | None:
    """The rate or quality target these options ask for (None: none); InputError when they conflict.

    Shared by Translate, the CLI and the QGIS algorithm, so all three refuse the same combinations.
    """
    targets = {"bpppc": bpppc, "min_psnr": min_psnr, "max_sam": max_sam}
    target = Target(**targets) if any(v is not None for v in targets.values()) else None
    if target is not None and quality is not None:
        raise InputError("give either a quality or a target (bpppc, min_psnr, max_sam), not both")
    if check_max_abs_error(max_abs_error) is not None and target is not None:
        raise InputError("max_abs_error bounds every sample's error whatever the rate: it cannot be combined "
                         "with a target (bpppc, min_psnr, max_sam); give a quality for its learned part instead")
    return target


MIN_BANDS = 4


def check_spectral(src: str, info: SceneInfo) -> None:
    """Refuse rasters that are not spectral cubes (1-3 bands: grey, RGB, an ortho photo).

    HSIC's codecs gain by decorrelating many bands; on a few bands they made files several times larger
    than the source (an 8-bit RGB ortho 22 KB -> 209 KB), so such an input gets a one-line refusal that
    names what to use instead, never a larger file.
    """
    if info.bands < MIN_BANDS:
        raise InputError(
            f"{src}: {info.bands} band(s) of {info.dtype} is not a spectral cube; HSIC's codecs need at least "
            f"{MIN_BANDS} correlated bands and would make it larger than lossless compression. Use GDAL "
            "instead: gdal_translate -co COMPRESS=DEFLATE (lossless) or -co COMPRESS=JPEG / WEBP (lossy, 8-bit)")



STATISTICS_SHARE = 0.05  # of the progress bar: two reads of the source, against its coding


def _share(progress: Progress | None, lo: float, hi: float) -> Progress | None:
    """``progress`` for one step that takes the part [lo, hi] of the bar."""
    if progress is None:
        return None
    return lambda fraction: progress(lo + (hi - lo) * fraction)



def _open_source(path: str, device: str):
    """A window source for the compressor: a GDAL raster, or a .hsic decoded on the fly (re-coding)."""
    return HsicSource(path, device) if path.lower().endswith(".hsic") else RasterSource(path)


def _write_geotiff(dst: str, ds: Dataset, progress: Progress | None) -> None:
    """GeoTIFF written under a temporary name and renamed: never a half-written file at ``dst``."""
    tmp = partial_name(dst)
    drv = gdal.GetDriverByName("GTiff")
    opts = ["COMPRESS=DEFLATE", "TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256", "INTERLEAVE=BAND", "BIGTIFF=IF_SAFER",
            f"PREDICTOR={3 if ds.dtype.startswith('float') else 2}"]
    bands: list = []
    try:
        out = drv.Create(tmp, ds.RasterXSize, ds.RasterYSize, ds.RasterCount, GDAL_TYPES[ds.dtype], opts)
        copy_georeferencing(out, ds)
        out.SetMetadata(ds.GetMetadata())
        bands += [out.GetRasterBand(i + 1) for i in range(ds.RasterCount)]
        for i, b in enumerate(bands):
            src_band = ds.GetRasterBand(i + 1)
            copy_band_metadata(b, src_band)
        write_windows(ds, bands, progress)
        bands.clear()
        with collect_errors() as errors:  # the last blocks and the directory are written while closing
            out.FlushCache()
            out = None
        if errors:
            raise HSICIOError(f"{dst}: cannot write GeoTIFF ({errors[0]})")
        os.replace(tmp, dst)
    except BaseException as e:
        bands.clear()  # drop GDAL band handles before the dataset, so the file is closed before removal
        with collect_errors():  # the error being raised says it all: no second report while closing
            out = None
        if os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(e, RuntimeError) and not isinstance(e, HSICError):
            raise HSICIOError(f"{dst}: cannot write GeoTIFF ({str(e).strip()})") from e
        raise
