"""Write a synthetic drive to disk as a KITTI raw folder, with its ground truth beside it.

Layout (readable by :class:`drivingseg.sensors.kitti_raw.KittiRawDrive`)::

    <out>/2024_05_01/calib_cam_to_cam.txt, calib_velo_to_cam.txt
    <out>/2024_05_01/2024_05_01_drive_0001_sync/
        image_02/timestamps.txt, image_02/data/0000000000.png ...
        velodyne_points/timestamps.txt, velodyne_points/data/0000000000.bin ...
        gt/image_02/0000000000.png          uint8 class per pixel (0 bg, 1 road, 2 car)
        gt/velodyne/0000000000.bin          uint8 class per point, same order as the scan
        gt/boxes/0000000000.txt             cars within 120 m, lidar frame, lidar stamp

Each box line is ``car_id x y z length width height yaw moving`` (metres, radians
about the lidar z axis; ``moving`` 0 or 1).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from os import PathLike
from pathlib import Path

import cv2
import numpy as np

from drivingseg.calibration.kitti import save_kitti_raw_calib
from drivingseg.errors import RecordingError
from drivingseg.sensors.synthetic.drive import START_NS, SyntheticDrive
from drivingseg.sensors.synthetic.lidar import MAX_RANGE_M as LIDAR_RANGE_M

__all__ = ["drive_folder", "format_kitti_timestamp", "write_synthetic_drive"]

CAMERA_FOLDER = "image_02"
LIDAR_FOLDER = "velodyne_points"

log = logging.getLogger(__name__)

Wrap = Callable[[Iterable[tuple[int, int]], int], Iterable[tuple[int, int]]]


def format_kitti_timestamp(stamp_ns: int) -> str:
    """``YYYY-MM-DD HH:MM:SS.nnnnnnnnn`` (UTC), KITTI's ``timestamps.txt`` line format."""
    seconds, nanos = divmod(int(stamp_ns), 1_000_000_000)
    dt = datetime.fromtimestamp(seconds, tz=timezone.utc)
    return f"{dt:%Y-%m-%d %H:%M:%S}.{nanos:09d}"


def drive_folder(out_dir: str | PathLike[str], drive: int = 1) -> Path:
    """Where :func:`write_synthetic_drive` puts the drive (the folder KittiRawDrive reads)."""
    date = datetime.fromtimestamp(START_NS // 1_000_000_000, tz=timezone.utc)
    day = f"{date:%Y_%m_%d}"
    return Path(out_dir) / day / f"{day}_drive_{drive:04d}_sync"


def _write_png(path: Path, image: np.ndarray) -> None:
    """Encode in memory and write the bytes: ``cv2.imwrite`` crashes the process on a
    file name that is not UTF-8 (``OUT_DIR`` from a Latin-1 file system)."""
    data = image[..., ::-1] if image.ndim == 3 else image
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(data))
    if not ok:
        raise RecordingError("OpenCV could not encode the PNG", path=path)
    try:
        path.write_bytes(buf.tobytes())
    except OSError as exc:
        raise RecordingError(f"cannot write the PNG: {exc.strerror or exc}", path=path) from exc


def _box_lines(drive: SyntheticDrive, i: int) -> str:
    lines = []
    for box in drive.car_boxes(i, "lidar", max_range_m=LIDAR_RANGE_M):
        yaw = float(np.arctan2(box.rotation[1, 0], box.rotation[0, 0]))
        x, y, z = box.center
        length, width, height = box.size_lwh
        lines.append(
            f"{box.car_id} {x:.4f} {y:.4f} {z:.4f} {length:.4f} {width:.4f} {height:.4f} "
            f"{yaw:.6f} {int(box.moving)}"
        )
    return "\n".join(lines) + ("\n" if lines else "")


@dataclass(frozen=True)
class _Layout:
    """The folders of one written drive."""

    drive_dir: Path

    @property
    def folders(self) -> tuple[Path, ...]:
        d = self.drive_dir
        return (
            d / CAMERA_FOLDER / "data",
            d / LIDAR_FOLDER / "data",
            d / "gt" / "image_02",
            d / "gt" / "velodyne",
            d / "gt" / "boxes",
        )


def _write_frame(drive: SyntheticDrive, layout: _Layout, i: int) -> tuple[int, int]:
    """Write frame ``i``'s image, scan and ground truth; return (camera, lidar) stamps."""
    cam_dir, velo_dir, gt_img, gt_velo, gt_box = layout.folders
    name = f"{i:010d}"
    cam = drive.camera(i)
    scan = drive.lidar(i)
    _write_png(cam_dir / f"{name}.png", cam.image)
    _write_png(gt_img / f"{name}.png", drive.labels(i))
    try:
        scan.points.astype("<f4").tofile(velo_dir / f"{name}.bin")
        drive.point_labels(i).tofile(gt_velo / f"{name}.bin")
        (gt_box / f"{name}.txt").write_text(_box_lines(drive, i), encoding="ascii")
    except OSError as exc:
        raise RecordingError(f"cannot write frame {i}: {exc}", path=layout.drive_dir) from exc
    return cam.stamp_ns, scan.stamp_ns


_worker: tuple[SyntheticDrive, _Layout] | None = None


def _init_worker(seed: int, frames: int, rig_path: Path | None, layout: _Layout) -> None:
    global _worker
    cv2.setNumThreads(1)  # the processes already use the cores; more threads only contend
    drive = SyntheticDrive(seed=seed, frames=frames, rig_path=rig_path)
    drive.open()
    _worker = (drive, layout)


def _worker_frame(i: int) -> tuple[int, int]:
    assert _worker is not None
    return _write_frame(_worker[0], _worker[1], i)


def write_synthetic_drive(
    out_dir: str | PathLike[str],
    frames: int = 100,
    seed: int = 0,
    *,
    rig_path: str | PathLike[str] | None = None,
    workers: int = 1,
    wrap: Wrap | None = None,
) -> Path:
    """Render ``frames`` camera/lidar pairs of drive ``seed`` into ``out_dir``; return the drive.

    ``workers`` > 1 renders frames in that many processes (the output is the same, as
    every frame depends only on the seed and its index). ``wrap(iterable, frames)`` may
    wrap the frame loop (a progress bar). The drive is written into a hidden sibling
    folder and renamed into place when complete, replacing an earlier drive there; an
    error or interrupt removes the partial folder and leaves the earlier drive as it was.
    """
    final = drive_folder(out_dir)
    tmp_dir = final.parent / f".{final.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    layout = _Layout(tmp_dir)
    rig = None if rig_path is None else Path(rig_path)
    created = False
    try:
        with SyntheticDrive(seed=seed, frames=frames, rig_path=rig) as drive:
            try:
                final.parent.mkdir(parents=True, exist_ok=True)
                tmp_dir.mkdir()
                created = True
                for folder in layout.folders:
                    folder.mkdir(parents=True)
            except OSError as exc:
                message = f"cannot create output folder: {exc}"
                raise RecordingError(message, path=out_dir) from exc
            cam_ns, velo_ns = _write_frames(drive, layout, rig, workers, wrap)
            _write_timestamps(layout.drive_dir, cam_ns, velo_ns)
            save_kitti_raw_calib(drive.rig(), final.parent, camera=2)
        _move_into_place(tmp_dir, final)
    finally:
        if created:
            shutil.rmtree(tmp_dir, ignore_errors=True)
    return final


def _write_frames(
    drive: SyntheticDrive, layout: _Layout, rig: Path | None, workers: int, wrap: Wrap | None
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Write every frame of the open ``drive`` into ``layout``; return camera and lidar stamps."""
    frames = len(drive)
    stamps: Iterable[tuple[int, int]]
    if workers > 1:
        # spawn, not fork: forking a process whose OpenMP/BLAS threads hold locks can hang.
        pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(drive.seed, drive.frames, rig, layout),
        )
        stamps = pool.map(_worker_frame, range(frames), chunksize=4)
    else:
        pool = None
        stamps = (_write_frame(drive, layout, i) for i in range(frames))
    try:
        if wrap is not None:
            stamps = wrap(stamps, frames)
        cam_ns, velo_ns = zip(*stamps, strict=True)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return cam_ns, velo_ns


def _write_timestamps(drive_dir: Path, cam_ns: Iterable[int], velo_ns: Iterable[int]) -> None:
    """Write the camera and lidar ``timestamps.txt`` of the drive in ``drive_dir``."""
    for name, values in ((CAMERA_FOLDER, cam_ns), (LIDAR_FOLDER, velo_ns)):
        path = drive_dir / name / "timestamps.txt"
        text = "".join(format_kitti_timestamp(v) + "\n" for v in values)
        try:
            path.write_text(text, encoding="ascii")
        except OSError as exc:
            raise RecordingError(f"cannot write timestamps: {exc}", path=path) from exc


def _move_into_place(tmp_dir: Path, final: Path) -> None:
    """Rename the complete drive ``tmp_dir`` to ``final``, replacing (then deleting) an old one.

    A reader sees the old drive, briefly no drive, or the new one, never a mix of both.
    """
    old = final.with_name(tmp_dir.name[: -len(".tmp")] + ".old")
    try:
        if final.exists() or final.is_symlink():
            os.rename(final, old)
        try:
            os.rename(tmp_dir, final)
        except OSError:
            if old.exists() or old.is_symlink():
                os.rename(old, final)
            raise
    except OSError as exc:
        message = f"cannot move the written drive into place: {exc}"
        raise RecordingError(message, path=final) from exc
    try:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old)
        elif old.exists() or old.is_symlink():
            old.unlink()
    except OSError as exc:
        log.warning("%s: could not delete the replaced drive %s: %s", final, old.name, exc)
