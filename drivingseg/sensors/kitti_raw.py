"""Reader of one KITTI raw drive (``2011_09_26_drive_0001_sync``).

Layout, as KITTI distributes it::

    2011_09_26/                         date folder: calib_cam_to_cam.txt, calib_velo_to_cam.txt
      2011_09_26_drive_0001_sync/       the drive (``path``)
        image_02/timestamps.txt, image_02/data/0000000000.png ...
        velodyne_points/timestamps.txt, velodyne_points/data/0000000000.bin ...

Opening loads the calibration, the timestamps and the file lists and checks that they
agree (contiguous numbering, one stamp per file, stamps never going backwards); images
and scans are read only when asked for, so a long drive costs little memory.

The velodyne may miss scans the recorder dropped: KITTI leaves their timestamps.txt line
blank and writes no ``.bin`` (``2011_09_26_drive_0009_sync``, frames 177-180). Such a
drive opens with one warning; frame numbers keep their meaning (``lidar(i)`` is the scan
of camera frame ``i``; a dropped one raises), :meth:`KittiRawDrive.lidar_scans` skips them.
Repeated stamps are warned about once; images are checked to keep one size (warned once).
Opening also warns when the first image is not the size the calibration gives (S_rect_0N:
the lidar would miss its pixels) and when the camera and the velodyne number different
frames (a copy cut short: the extra frames stay unpaired).

KITTI's unsynced ``*_extract`` download (velodyne scans as ``.txt``, unrectified images
that the rectified calibration does not describe) is refused with a message saying so.
"""

from __future__ import annotations

import logging
import operator
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import SupportsIndex

import numpy as np
import numpy.typing as npt

from drivingseg.calibration.kitti import load_kitti_raw_rig
from drivingseg.calibration.types import Rig
from drivingseg.errors import ConfigError, RecordingError
from drivingseg.sensors.base import Recording, RecordingInfo, StreamInfo
from drivingseg.sensors.checks import SizeWatch
from drivingseg.sensors.decode import read_image_rgb, read_velodyne_bin
from drivingseg.sensors.frames import CameraFrame, LidarScan
from drivingseg.sensors.kitti_benchmark import png_size
from drivingseg.sensors.kitti_timestamps import read_kitti_timestamp_lines

__all__ = ["KittiRawDrive"]

log = logging.getLogger(__name__)

LIDAR_FOLDER = "velodyne_points"
CALIB_FILES = ("calib_cam_to_cam.txt", "calib_velo_to_cam.txt")
_DATE = re.compile(r"\d{4}_\d{2}_\d{2}")
EXTRACT_HINT = (
    "this is KITTI raw's unsynced 'extract' layout (velodyne scans as text, camera images "
    "not rectified, so the calibration's rectified projection does not fit them), which "
    "drivingseg does not read; use the drive's synced+rectified '_sync' download"
)
_EMPTY_STAMPS: npt.NDArray[np.int64] = np.zeros(0, dtype=np.int64)
_EMPTY_STAMPS.setflags(write=False)
_FIRST_NS = -(1 << 63)  # before every stamp: ``*_from(_FIRST_NS)`` reads a whole stream


@dataclass(frozen=True)
class _Stream:
    """One sensor folder of a drive: its data files, their frame numbers and stamps.

    ``frames`` counts the frame numbers (timestamps.txt lines); ``numbers`` has one entry
    per file, fewer when the recorder dropped frames (velodyne only).
    """

    name: str
    frames: int
    numbers: npt.NDArray[np.int64]
    files: tuple[Path, ...]
    stamps_ns: npt.NDArray[np.int64]


def _list_numbered(data_dir: Path, suffix: str) -> dict[int, Path]:
    """The ``*<suffix>`` files of ``data_dir`` by frame number (names checked, in order)."""
    files = sorted(p for p in data_dir.iterdir() if p.suffix == suffix and p.is_file())
    if not files:
        if suffix == ".bin" and any(p.suffix == ".txt" for p in data_dir.iterdir()):
            raise RecordingError(f"holds .txt scans, no .bin: {EXTRACT_HINT}", path=data_dir)
        raise RecordingError(f"no {suffix} files in the data folder", path=data_dir)
    width = len(files[0].stem)
    for f in files:
        if not f.stem.isdigit():
            msg = f"file name {f.name!r} is not a frame number like {'0' * width}{suffix}"
            raise RecordingError(msg, path=f)
    numbered: dict[int, Path] = {}
    for f in sorted(files, key=lambda f: int(f.stem)):
        n = int(f.stem)
        if n in numbered:
            msg = f"file name {f.name!r} repeats frame {n!r} of {numbered[n].name!r}"
            raise RecordingError(msg, path=f)
        numbered[n] = f
    return numbered


def _ranges(numbers: list[int]) -> str:
    """``[1, 2, 3, 7]`` as ``'1-3, 7'``."""
    spans: list[list[int]] = []
    for n in numbers:
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


def _check_frames(data_dir: Path, suffix: str, files: dict[int, Path],
                  lines: list[int | None], drops: bool) -> list[int]:
    """Check that files and timestamp lines agree; return the dropped frame numbers.

    A dropped frame (only with ``drops``) has a blank line and no file, as KITTI marks a
    lost velodyne scan; any other missing file, blank line or extra file is an error.
    """
    first = next(iter(files.values()))
    width = len(first.stem)
    last = max(files)
    dropped = []
    for i in range(last + 1):
        if i in files:
            continue
        if drops and i < len(lines) and lines[i] is None:
            dropped.append(i)
            continue
        jump = next(f for n, f in files.items() if n > i)
        msg = f"frame {i} is missing (numbering jumps to {jump.name!r})"
        if drops and i < len(lines):
            msg += (f", yet line {i + 1} of timestamps.txt has its stamp (a scan the recorder "
                    "dropped has a blank line): an incomplete copy?")
        raise RecordingError(msg, path=data_dir / f"{i:0{width}d}{suffix}")
    stamps_file = data_dir.parent / "timestamps.txt"
    if len(lines) != last + 1:
        msg = (
            f"{len(lines)} timestamps for {len(files)} {suffix} files in {data_dir.name}/"
            + (f" (numbered up to {last}, {len(dropped)} dropped)" if dropped else "")
            + "; each frame needs exactly one"
        )
        raise RecordingError(msg, path=stamps_file)
    for i, stamp in enumerate(lines):
        if stamp is None and i in files:
            msg = (f"line {i + 1} is blank, but frame {i} has a file, {files[i].name!r}; "
                   "every frame with a file needs a stamp")
            raise RecordingError(msg, path=stamps_file)
    return dropped


def _load_stream(folder: Path, suffix: str, *, drops: bool = False) -> _Stream | None:
    """Load ``folder/data/*<suffix>`` and ``folder/timestamps.txt``; ``None`` if no folder.
    With ``drops``, frames the recorder dropped (blank line, no file) are left out, warned."""
    if not folder.is_dir():
        return None
    data_dir = folder / "data"
    if not data_dir.is_dir():
        raise RecordingError("sensor folder has no 'data' subfolder", path=folder)
    files = _list_numbered(data_dir, suffix)
    stamps_file = folder / "timestamps.txt"
    lines = read_kitti_timestamp_lines(stamps_file)
    if not drops and None in lines:
        lineno = lines.index(None) + 1
        msg = (f"line {lineno} is blank; every {folder.name}/ frame needs a stamp (only "
               f"{LIDAR_FOLDER}/ may mark a dropped frame so)")
        raise RecordingError(msg, path=stamps_file)
    dropped = _check_frames(data_dir, suffix, files, lines, drops)
    if dropped:
        log.warning("%s: %d of %d frames were dropped by the recorder (frames %s: blank "
                    "timestamp line, no %s file); they are skipped", folder, len(dropped),
                    len(lines), _ranges(dropped), suffix)
    stamps = np.array([lines[n] for n in files], dtype=np.int64)
    repeats = np.flatnonzero(np.diff(stamps) == 0)
    if len(repeats):
        n = int(list(files)[repeats[0] + 1])
        log.warning("%s: %d repeated stamps (the first at line %d, %r ns); the "
                    "synchroniser pairs only the first frame of a stamp", stamps_file,
                    len(repeats), n + 1, int(stamps[repeats[0]]))
    numbers = np.array(list(files), dtype=np.int64)
    for arr in (stamps, numbers):
        arr.setflags(write=False)
    return _Stream(folder.name, len(lines), numbers, tuple(files.values()), stamps)


def _warn_count_mismatch(camera: _Stream | None, lidar: _Stream | None, path: Path) -> None:
    """Warn when the camera and the velodyne number different frames: frame ``i`` of one
    has no frame ``i`` in the other (a copy cut short, or folders of two drives)."""
    if camera is None or lidar is None or camera.frames == lidar.frames:
        return
    short, long_ = (camera, lidar) if camera.frames < lidar.frames else (lidar, camera)
    extra = long_.frames - short.frames
    missing = _ranges(list(range(short.frames, long_.frames)))
    log.warning("%s: %s/ has %d frames but %s/ has %d: %s %s %s %s no %s frame (an incomplete "
                "copy?); %s unpaired", path, camera.name, camera.frames, lidar.name,
                lidar.frames, long_.name, "frame" if extra == 1 else "frames", missing,
                "has" if extra == 1 else "have", short.name, "it stays" if extra == 1 else
                "they stay")


class KittiRawDrive(Recording):
    """A KITTI raw drive: one rectified camera (``image_0<camera>``) and the velodyne.

    ``calib_dir`` is the folder with ``calib_cam_to_cam.txt`` and ``calib_velo_to_cam.txt``
    (default: the drive's parent, the date folder). Without those files ``rig()`` is
    ``None``; when given explicitly, or when one of them exists, they must load.
    Either sensor folder may be absent, not both.
    """

    format = "kitti_raw"

    def __init__(
        self,
        path: str | PathLike[str],
        *,
        camera: int = 2,
        calib_dir: str | PathLike[str] | None = None,
    ) -> None:
        super().__init__(path)
        if isinstance(camera, bool) or camera not in (0, 1, 2, 3):
            raise ConfigError(f"camera must be 0, 1, 2 or 3 (KITTI image_0N), got {camera!r}")
        self.camera_index = camera
        self._calib_explicit = calib_dir is not None
        # made absolute first: the parent of "." or ".." is not the date folder; abspath
        # (unlike resolve) keeps a symlinked drive's date folder as the one it is linked in
        default_dir = Path(os.path.abspath(self.path)).parent
        self.calib_dir = Path(calib_dir) if calib_dir is not None else default_dir
        self._camera: _Stream | None = None
        self._lidar: _Stream | None = None
        self._rig: Rig | None = None
        self.rig_note = ""
        """Why :meth:`rig` is None (``drivingseg info`` shows it); empty with a rig."""
        self._sizes = SizeWatch(str(self.path))

    @property
    def camera_folder(self) -> str:
        return f"image_0{self.camera_index}"

    def require_camera(self) -> None:
        """Raise :class:`RecordingError` naming the missing ``image_0N/`` folder and the
        camera folders the drive does have."""
        self._check_open()
        if self._camera is not None:
            return
        others = [f"image_0{n}/" for n in self.other_cameras()]
        has = f"it has {', '.join(others)}" if others else "it has no camera folder"
        message = (f"camera {self.camera_index}: {self.camera_folder}/ does not exist ({has}); "
                   "pick one with --camera N")
        raise RecordingError(message, path=self.path)

    def other_cameras(self) -> tuple[int, ...]:
        """KITTI camera numbers other than this drive's whose ``image_0N/`` folder exists."""
        return tuple(n for n in range(4)
                     if n != self.camera_index and (self.path / f"image_0{n}").is_dir())

    def _open(self) -> None:
        if not self.path.is_dir():
            raise RecordingError("KITTI raw drive folder not found", path=self.path)
        if Path(os.path.abspath(self.path)).name.endswith("_extract"):
            raise RecordingError(f"drive folder named '*_extract': {EXTRACT_HINT}", path=self.path)
        camera = _load_stream(self.path / self.camera_folder, ".png")
        lidar = _load_stream(self.path / LIDAR_FOLDER, ".bin", drops=True)
        if camera is None and lidar is None:
            msg = f"not a KITTI raw drive: neither {self.camera_folder}/ nor {LIDAR_FOLDER}/ found"
            raise RecordingError(msg, path=self.path)
        self._rig = self._load_rig()
        self._camera, self._lidar = camera, lidar
        self._sizes = self._size_watch(camera)
        _warn_count_mismatch(camera, lidar, self.path)

    def _size_watch(self, camera: _Stream | None) -> SizeWatch:
        """The frame size check of the camera, warned at once (from the first PNG's header)
        when its images are not the size the calibration gives: a drive resized after
        download, or the calibration of another date (each has its own S_rect: 1242x375 on
        2011_09_26, 1226x370 on 2011_09_30)."""
        stream = str(self.path / self.camera_folder)
        rig = self._rig
        if rig is None or camera is None:
            return SizeWatch(stream)
        expected_from = f"{rig.camera.path or self.calib_dir} (S_rect_0{self.camera_index})"
        watch = SizeWatch(stream, rig.camera.image_size, expected_from)
        first = camera.files[0]
        try:
            width, height = png_size(first)
        except RecordingError:
            return watch  # reading the frame reports it
        watch.check_size(int(camera.numbers[0]), width, height, source=first.name)
        return watch

    def _load_rig(self) -> Rig | None:
        present = [name for name in CALIB_FILES if (self.calib_dir / name).is_file()]
        if not present and not self._calib_explicit:
            # KITTI ships a date's calibration apart from its drives (<date>_calib.zip),
            # so a drive downloaded alone has none: say where it was looked for
            date = self.calib_dir.name
            zip_hint = f" (KITTI's {date}_calib.zip)" if _DATE.fullmatch(date) else ""
            self.rig_note = (f"no {' or '.join(CALIB_FILES)} in the date folder "
                             f"{str(self.calib_dir)!r}{zip_hint}")
            log.info("%s: %s; rig() is None", self.path, self.rig_note)
            return None
        self.rig_note = ""
        return load_kitti_raw_rig(self.calib_dir, camera=self.camera_index)

    def _close(self) -> None:
        self._camera = self._lidar = None
        self._rig = None

    # --- metadata -------------------------------------------------------------------

    def __len__(self) -> int:
        """Number of camera frames, or without a camera of lidar frame numbers (dropped
        scans included): the indices :meth:`camera` (or :meth:`lidar`) accepts."""
        self._check_open()
        stream = self._camera if self._camera is not None else self._lidar
        return 0 if stream is None else stream.frames

    @property
    def camera_stamps_ns(self) -> npt.NDArray[np.int64]:
        """Camera stamps (read-only int64 ns since the epoch); empty without a camera."""
        self._check_open()
        return self._camera.stamps_ns if self._camera is not None else _EMPTY_STAMPS

    @property
    def lidar_stamps_ns(self) -> npt.NDArray[np.int64]:
        """Stamps of the lidar scans present (read-only int64 ns since the epoch; scans the
        recorder dropped have none); empty without a velodyne."""
        self._check_open()
        return self._lidar.stamps_ns if self._lidar is not None else _EMPTY_STAMPS

    @property
    def lidar_frame_numbers(self) -> npt.NDArray[np.int64]:
        """Frame number of each scan present (read-only int64, aligned with
        :attr:`lidar_stamps_ns` and :attr:`lidar_files`); without drops 0..N-1."""
        self._check_open()
        return self._lidar.numbers if self._lidar is not None else _EMPTY_STAMPS

    @property
    def camera_files(self) -> tuple[Path, ...]:
        self._check_open()
        return self._camera.files if self._camera is not None else ()

    @property
    def lidar_files(self) -> tuple[Path, ...]:
        self._check_open()
        return self._lidar.files if self._lidar is not None else ()

    @property
    def camera_frame_id(self) -> str:
        return self._rig.camera_frame if self._rig is not None else self.camera_folder

    @property
    def lidar_frame_id(self) -> str:
        return self._rig.lidar_frame if self._rig is not None else "velodyne"

    def rig(self) -> Rig | None:
        self._check_open()
        return self._rig

    def info(self) -> RecordingInfo:
        self._check_open()
        streams = []
        kinds = ((self._camera, "camera", "png"), (self._lidar, "lidar", "bin"))
        for stream, kind, msgtype in kinds:
            if stream is None:
                continue
            stamps = stream.stamps_ns
            streams.append(
                StreamInfo(
                    name=stream.name,
                    kind=kind,
                    msgtype=msgtype,
                    count=len(stream.files),
                    first_ns=int(stamps[0]),
                    last_ns=int(stamps[-1]),
                )
            )
        return RecordingInfo(path=str(self.path), format=self.format, streams=tuple(streams))

    # --- frames ---------------------------------------------------------------------

    def _pick(self, stream: _Stream | None, folder: str,
              index: SupportsIndex) -> tuple[_Stream, int, int]:
        """The stream, the position of frame ``index`` in its files and the frame number;
        raise if the stream is absent, ``index`` out of range or its frame dropped."""
        self._check_open()
        if stream is None:
            raise RecordingError(f"drive has no {folder}/ folder", path=self.path)
        i = operator.index(index)
        n = stream.frames
        if not -n <= i < n:
            raise IndexError(f"{folder} index {i} out of range for {n} frames")
        number = i % n
        pos = int(np.searchsorted(stream.numbers, number))
        if pos == len(stream.numbers) or stream.numbers[pos] != number:
            first = stream.files[0]
            missing = first.with_stem(f"{number:0{len(first.stem)}d}")
            msg = (f"{folder} frame {number!r} was dropped by the recorder (line {number + 1} "
                   "of timestamps.txt is blank, and there is no such file)")
            raise RecordingError(msg, path=missing)
        return stream, pos, number

    def _camera_at(self, stream: _Stream, pos: int) -> CameraFrame:
        path = stream.files[pos]
        frame = CameraFrame(
            stamp_ns=int(stream.stamps_ns[pos]),
            image=read_image_rgb(path),
            frame_id=self.camera_frame_id,
            index=int(stream.numbers[pos]),
            source=str(path),
        )
        self._sizes.check(frame)
        return frame

    def _lidar_at(self, stream: _Stream, pos: int) -> LidarScan:
        path = stream.files[pos]
        return LidarScan(
            stamp_ns=int(stream.stamps_ns[pos]),
            points=read_velodyne_bin(path),
            frame_id=self.lidar_frame_id,
            index=int(stream.numbers[pos]),
            source=str(path),
        )

    def camera(self, i: SupportsIndex) -> CameraFrame:
        """Camera frame ``i`` (RGB uint8), read from disk now."""
        stream, pos, _ = self._pick(self._camera, self.camera_folder, i)
        return self._camera_at(stream, pos)

    def lidar(self, i: SupportsIndex) -> LidarScan:
        """Lidar scan of frame ``i`` (Nx4 float32), read from disk now; a scan the recorder
        dropped raises :class:`RecordingError`."""
        stream, pos, _ = self._pick(self._lidar, LIDAR_FOLDER, i)
        return self._lidar_at(stream, pos)

    def camera_frames(self) -> Iterator[CameraFrame]:
        return self.camera_frames_from(_FIRST_NS)

    def lidar_scans(self) -> Iterator[LidarScan]:
        """The scans present, in order; ``index`` is the frame number (dropped ones skipped)."""
        return self.lidar_scans_from(_FIRST_NS)

    def camera_frames_from(self, start_ns: int) -> Iterator[CameraFrame]:
        """Frames stamped at or after ``start_ns``, the earlier ones not read."""
        self._check_open()
        stream = self._camera
        if stream is None:
            return iter(())
        kept = np.flatnonzero(stream.stamps_ns >= start_ns)
        return (self._camera_at(stream, int(pos)) for pos in kept)

    def lidar_scans_from(self, start_ns: int) -> Iterator[LidarScan]:
        """Scans stamped at or after ``start_ns``, the earlier ones not read."""
        self._check_open()
        stream = self._lidar
        if stream is None:
            return iter(())
        kept = np.flatnonzero(stream.stamps_ns >= start_ns)
        return (self._lidar_at(stream, int(pos)) for pos in kept)
