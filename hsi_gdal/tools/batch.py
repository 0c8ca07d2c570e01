"""``hsic batch``: compress every raster of a folder tree on Dask distributed, resumably.

Each input ``IN/a/b.tif`` becomes ``OUT/a/b.hsic`` (with its sidecar). An output that already opens
and checks out (header valid, every tile's CRC right, same codec and quality) is skipped, so a batch
stopped half-way (a crash, ``kill -9``, a lost worker) is finished by running it again, and running a
finished batch again changes nothing. Outputs are written atomically by the container, so an
interrupted file is never mistaken for a complete one. A manifest of inputs, outputs, true rates and
quality is written to ``OUT/manifest.csv`` and ``OUT/manifest.json``; a failing file is reported on one
line and does not stop the others.
"""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path
from typing import Callable

from engine.errors import HSICError, InputError

__all__ = ["RASTER_SUFFIXES", "find_rasters", "is_complete", "run_batch"]

RASTER_SUFFIXES = (".tif", ".tiff", ".img", ".dat", ".bsq", ".bil", ".bip")
FIELDS = ("input", "output", "status", "codec", "quality", "bytes", "bpppc", "compression_ratio", "psnr_db",
          "ssim", "sam_deg", "max_abs_error", "seconds", "error")


def find_rasters(input_dir: str | os.PathLike, exclude: str | os.PathLike | None = None) -> list[Path]:
    """Raster files under ``input_dir`` (sorted), leaving out anything under ``exclude``."""
    root = Path(input_dir)
    if not root.is_dir():
        raise InputError(f"{root}: not a folder")
    skip = Path(exclude).resolve() if exclude is not None else None
    found = []
    for p in sorted(root.rglob("*")):
        if p.suffix.lower() in RASTER_SUFFIXES and p.is_file():
            if skip is not None and p.resolve().is_relative_to(skip):
                continue
            found.append(p)
    return found


def is_complete(path: str | os.PathLike, codec: str, quality: int) -> bool:
    """Whether ``path`` is a whole .hsic file of this codec and quality (not merely present)."""
    from engine.format.container import open_hsic

    try:
        with open_hsic(path) as r:
            if (r.header.codec, r.header.quality) != (codec, quality):
                return False
            for i in range(r.n_tiles):
                r.read_tile(i)  # checks every payload's CRC
    except HSICError:
        return False
    return True


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text and isinstance(e, HSICError) else f"{type(e).__name__}: {text[0] if text else ''}"


def compress_one(src: str, dst: str, codec: str, quality: int, device: str = "auto") -> dict:
    """Compress one raster unless a complete output exists; a record for the manifest, never raises."""
    t0 = time.perf_counter()
    rec = {"input": src, "output": dst, "codec": codec, "quality": quality}
    try:
        import hsi_gdal

        if is_complete(dst, codec, quality):
            rec["status"] = "skipped"
            hsi_gdal.ensure_sidecar(dst)  # rewrites it only if missing or stale (a crash between the two)
        else:
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            hsi_gdal.Translate(dst, src, codec=codec, quality=quality, device=device)
            rec["status"] = "compressed"
        r = hsi_gdal.evaluate(src, dst, device=device)
        rec.update({k: r[k] for k in ("bytes", "bpppc", "compression_ratio", "psnr_db", "ssim", "sam_deg",
                                      "max_abs_error")})
    except Exception as e:  # noqa: BLE001 - one bad file must not stop the batch
        rec.update(status="failed", error=_one_line(e))
    rec["seconds"] = round(time.perf_counter() - t0, 3)
    return rec


def _write_manifest(output_dir: Path, records: list[dict]) -> None:
    """manifest.json and manifest.csv, each written under a temporary name and renamed."""
    records = sorted(records, key=lambda r: r["input"])
    tmp = output_dir / "manifest.json.partial"
    tmp.write_text(json.dumps(records, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, output_dir / "manifest.json")
    tmp = output_dir / "manifest.csv.partial"
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        for r in records:
            w.writerow({k: r.get(k, "") for k in FIELDS})
    os.replace(tmp, output_dir / "manifest.csv")


def run_batch(input_dir: str | os.PathLike, output_dir: str | os.PathLike, codec: str | None = None,
              quality: int | None = None, scheduler: str | None = None, workers: int = 2,
              processes: bool = True, device: str = "auto",
              progress: Callable[[int, int, dict], None] | None = None) -> list[dict]:
    """Compress every raster under ``input_dir`` into the mirrored tree ``output_dir``.

    Runs on the Dask scheduler at ``scheduler`` (an address such as ``tcp://host:8786``) or on a
    LocalCluster of ``workers`` workers (``processes=False`` for threads). ``progress(done, total, record)``
    is called as each file finishes. Returns the manifest records (also written to the output folder).
    """
    from engine.registry import DEFAULT_CODEC, get_info

    codec = codec or DEFAULT_CODEC
    quality = get_info(codec).check_quality(quality)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InputError(f"workers must be a positive integer, got {workers!r}")
    out_root = Path(output_dir)
    out_root.mkdir(parents=True, exist_ok=True)
    sources = find_rasters(input_dir, exclude=out_root)
    if not sources:
        raise InputError(f"{input_dir}: no rasters ({', '.join(RASTER_SUFFIXES)}) found")
    targets = [str(out_root / p.relative_to(input_dir).with_suffix(".hsic")) for p in sources]
    if len(set(targets)) != len(targets):
        raise InputError(f"{input_dir}: two rasters differ only by extension; they would share an output")

    import logging

    from distributed import Client, LocalCluster, as_completed

    if scheduler:
        try:
            client = Client(scheduler, timeout=30)
        except (OSError, TimeoutError) as e:
            raise InputError(f"cannot reach the Dask scheduler at {scheduler}: {e}") from None
        cluster = None
    else:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=processes,
                               dashboard_address=None, silence_logs=logging.ERROR)
        client = Client(cluster)
    records = []
    try:
        futures = client.map(compress_one, [str(p) for p in sources], targets, codec=codec, quality=quality,
                             device=device, pure=False)
        for fut in as_completed(futures):
            try:
                rec = fut.result()
            except Exception as e:  # noqa: BLE001 - a lost worker: report the file, go on
                i = futures.index(fut)
                rec = {"input": str(sources[i]), "output": targets[i], "codec": codec, "quality": quality,
                       "status": "failed", "error": _one_line(e)}
            records.append(rec)
            if progress is not None:
                progress(len(records), len(futures), rec)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
        if records:
            _write_manifest(out_root, records)
    return sorted(records, key=lambda r: r["input"])
