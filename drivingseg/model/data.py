"""Labelled driving frames: CamVid, KITTI road, KITTI semantics and synthetic drives.

Every layout becomes a list of :class:`LabelledFile` (image path, label path, layout);
:func:`read_labels` maps the layout's label convention onto drivingseg's three classes
(0 background, 1 road, 2 car, 255 ignore):

- ``camvid`` (SegNet layout ``X/`` + ``Xannot/``): 3 road, 8 car, 11 unlabelled -> 255,
  ids 0-10 otherwise background; anything above 11 is refused.
- ``kitti_road`` (``image_2/um_000000.png`` + ``gt_image_2/um_road_000000.png``): colour
  labels, magenta (255, 0, 255) road, red (255, 0, 0) not road, black -> 255. Cars are not
  labelled there, so only road is scored on this layout, and training reads "not road" as
  ``NOT_ROAD_INDEX`` (:func:`load_training_pair`): background or car, never background.
- ``kitti_semantics`` (``image_2/`` + ``semantic/``, Cityscapes label ids): 7 road,
  26 car, 0 unlabelled -> 255, other ids 1-33 background; above 33 is refused.
- ``synthetic`` (a drive written by ``write_synthetic_drive``: ``image_02/data/`` +
  ``gt/image_02/``): exact ids 0/1/2.
- ``plain`` (any folder with ``images/`` + ``labels/``, a label PNG of the same stem per
  image): single-channel drivingseg ids already, 0 background, 1 road, 2 car, 255 ignore;
  any other id is refused. The way to bring another dataset: convert its labels once.

:func:`read_fine_labels` keeps CamVid's eleven classes instead (:data:`FINE_CLASSES`, 11
unlabelled -> 255) for the auxiliary head of ``train.fine_weight``; a layout without them
gives its road and car pixels the CamVid ids (3, 8) and ignores the rest.

Images may be PNG or JPEG; labels are lossless PNG (a JPEG frame's label is looked up
under its own suffix first, then as ``.png``), grey, or indexed with a palette to view
them: the palette indices are the ids.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np
import numpy.typing as npt

from drivingseg.errors import RecordingError
from drivingseg.model.config import FINE_CLASSES, IGNORE_INDEX, NOT_ROAD_INDEX
from drivingseg.sensors.decode import decode_stored, read_image_rgb, stored_to_rgb

__all__ = [
    "LAYOUTS",
    "LabelledFile",
    "camvid_sequence",
    "check_pair",
    "discover",
    "fine_from_coarse",
    "load_pair",
    "load_training_pair",
    "map_label_ids",
    "read_fine_labels",
    "read_labels",
    "synthetic_frames",
    "synthetic_lidar",
]

LAYOUTS = ("camvid", "kitti_road", "kitti_semantics", "synthetic", "plain")
Labels = npt.NDArray[np.uint8]
Image = npt.NDArray[np.uint8]

_CAMVID_LUT = np.zeros(256, dtype=np.uint8)
_CAMVID_LUT[3], _CAMVID_LUT[8], _CAMVID_LUT[11] = 1, 2, IGNORE_INDEX
_CAMVID_MAX = 11
_CITYSCAPES_LUT = np.zeros(256, dtype=np.uint8)
_CITYSCAPES_LUT[7], _CITYSCAPES_LUT[26], _CITYSCAPES_LUT[0] = 1, 2, IGNORE_INDEX
_CITYSCAPES_MAX = 33
_FINE_FROM_COARSE = np.full(256, IGNORE_INDEX, dtype=np.uint8)
_FINE_FROM_COARSE[1], _FINE_FROM_COARSE[2] = FINE_CLASSES.index("road"), FINE_CLASSES.index("car")
_SYNTHETIC_MAX = 2
_PLAIN_MAX = 2
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_SIDE_BY_SIDE = (("image_2", "gt_image_2"), ("image_2", "semantic"), ("images", "labels"))
"""(images, labels) folder pairs of the KITTI road, KITTI semantics and plain layouts."""


@dataclass(frozen=True)
class LabelledFile:
    """One labelled frame on disk: RGB image, label image and the layout's convention."""

    image: Path
    label: Path
    layout: str

    @property
    def name(self) -> str:
        return self.image.stem


def camvid_sequence(path: str | PathLike[str]) -> str:
    """CamVid's sequence of a frame: the file name prefix (``0016E5_07959.png`` -> 0016E5)."""
    return Path(path).name.split("_", 1)[0]


def _images(folder: Path) -> list[Path]:
    """The image files of ``folder``; one that vanished or cannot be listed (a drive's
    ``gt/`` copied without its ``image_02/data/``) is a RecordingError naming it."""
    try:
        return sorted(p for p in folder.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
    except OSError as exc:
        message = f"cannot list the labelled frames: {exc.strerror or exc}"
        raise RecordingError(message, path=folder) from exc


def _pairs(images: Path, labels: Path, layout: str, label_name: str = "{stem}{suffix}") -> list[
    LabelledFile
]:
    out = []
    for img in _images(images):
        if layout == "kitti_road":
            cat, _, num = img.stem.partition("_")
            lbl = labels / f"{cat}_road_{num}{img.suffix}"
        else:
            lbl = labels / label_name.format(stem=img.stem, suffix=img.suffix)
        if not lbl.is_file() and lbl.suffix.lower() != ".png":
            lbl = lbl.with_suffix(".png")  # JPEG frames, lossless PNG labels
        if not lbl.is_file():
            raise RecordingError(f"no label image {lbl.name!r} for this frame", path=img)
        out.append(LabelledFile(img, lbl, layout))
    return out


def discover(root: str | PathLike[str]) -> list[LabelledFile]:
    """Every labelled frame under ``root``, whatever the layout (see the module docstring).

    ``root`` may be a CamVid root (``train/``, ``trainannot/``, ...), one CamVid split
    (``val`` beside ``valannot``), a KITTI road or semantics folder (or its parent holding
    ``training/``) or a synthetic drive folder (or the date folder above it, or the
    ``OUT_DIR`` of ``drivingseg synth`` above that).
    """
    path = Path(root)
    if not path.is_dir():
        raise RecordingError("data folder not found (or not a folder)", path=path)
    layout, files = _discover(path)
    if not files:  # the layout's folders are there but empty: no training on nothing
        kinds = "/".join(s.lstrip(".") for s in _IMAGE_SUFFIXES)
        message = (f"no labelled frames in this folder: the {layout} layout's image folders "
                   f"hold no {kinds} images")
        raise RecordingError(message, path=path)
    return files


def _discover(path: Path) -> tuple[str, list[LabelledFile]]:
    """The layout of ``path`` and its frames (see :func:`discover`)."""
    if (path / "training").is_dir():
        path = path / "training"
    kinds = [f"{images}/ + {labels}/" for images, labels in _SIDE_BY_SIDE
             if (path / images).is_dir() and (path / labels).is_dir()]
    if len(kinds) > 1:  # merged downloads: which labels are meant cannot be guessed
        message = (f"this folder holds labels of several layouts ({', '.join(kinds)}); point "
                   "at a folder of one layout")
        raise RecordingError(message, path=path)
    if (path / "image_2").is_dir() and (path / "gt_image_2").is_dir():
        return "kitti_road", _pairs(path / "image_2", path / "gt_image_2", "kitti_road")
    if (path / "image_2").is_dir() and (path / "semantic").is_dir():
        return "kitti_semantics", _pairs(path / "image_2", path / "semantic", "kitti_semantics")
    if (path / "images").is_dir() and (path / "labels").is_dir():
        return "plain", _pairs(path / "images", path / "labels", "plain", "{stem}.png")
    sibling = path.parent / f"{path.name}annot"
    if sibling.is_dir():
        return "camvid", _pairs(path, sibling, "camvid")
    camvid = sorted(d for d in path.iterdir() if d.is_dir() and (path / f"{d.name}annot").is_dir())
    if camvid:
        return "camvid", [f for d in camvid for f in _pairs(d, path / f"{d.name}annot", "camvid")]
    drives = _synthetic_drives(path)
    if drives:
        return "synthetic", [f for d in drives for f in _pairs(d / "image_02" / "data",
                                                                d / "gt" / "image_02", "synthetic")]
    message = (
        "no labelled frames found: expected a CamVid folder (X/ beside Xannot/), KITTI road "
        "(image_2/ + gt_image_2/), KITTI semantics (image_2/ + semantic/), a synthetic "
        "drive (image_02/data/ + gt/image_02/) or images/ + labels/ (drivingseg ids)"
    )
    raise RecordingError(message, path=path)


def _synthetic_drives(path: Path) -> list[Path]:
    """The synthetic drives at ``path``: itself, the drives of a date folder, or those of
    the date folders in ``drivingseg synth``'s OUT_DIR (``OUT/2024_05_01/..._sync``)."""
    for pattern in ("gt/image_02", "*/gt/image_02", "*/*/gt/image_02"):
        found = sorted(g.parent.parent for g in path.glob(pattern) if g.is_dir())
        if found:
            return found
    return []


def map_label_ids(raw: Labels, layout: str, source: str | PathLike[str]) -> Labels:
    """Map a single-channel label image of ``layout`` onto 0/1/2/255; unknown ids raise."""
    limits = {"camvid": (_CAMVID_MAX, _CAMVID_LUT), "kitti_semantics": (_CITYSCAPES_MAX,
              _CITYSCAPES_LUT), "synthetic": (_SYNTHETIC_MAX, None), "plain": (_PLAIN_MAX, None)}
    if layout not in limits:
        raise RecordingError(f"unknown label layout {layout!r}; valid: {', '.join(LAYOUTS)}",
                             path=source)
    top, lut = limits[layout]
    unknown = (raw > top) & (raw != IGNORE_INDEX) if layout == "plain" else raw > top
    if raw.size and unknown.any():
        bad = sorted(int(v) for v in np.unique(raw[unknown]))[:8]
        valid = f"0..{top}" + (f" and {IGNORE_INDEX}" if layout == "plain" else "")
        message = f"label image holds unknown {layout} ids {bad!r} (valid ids are {valid})"
        raise RecordingError(message, path=source)
    return raw.copy() if lut is None else lut[raw]


_KITTI_ROAD_COLOURS = np.array([(255, 0, 255), (255, 0, 0), (0, 0, 0)], dtype=np.int16)
_KITTI_ROAD_TOLERANCE = 64  # per channel: exact in the benchmark's PNGs, loose for resaves


def _kitti_road_labels(rgb: Image, source: Path) -> Labels:
    """gt_image_2 colours as ids; any other colour (a grey id image, a colour map of
    another benchmark) is refused rather than read as "don't care"."""
    near = np.zeros(rgb.shape[:2], dtype=bool)
    for colour in _KITTI_ROAD_COLOURS:
        near |= (np.abs(rgb.astype(np.int16) - colour) <= _KITTI_ROAD_TOLERANCE).all(axis=-1)
    if not near.all():
        bad = np.unique(rgb[~near].reshape(-1, 3), axis=0)[:4]
        colours = [tuple(int(c) for c in row) for row in bad]
        message = (f"KITTI road label holds {int((~near).sum())} pixels of colours other than "
                   f"magenta (255, 0, 255) road, red (255, 0, 0) not road and black don't "
                   f"care, e.g. RGB {colours!r}")
        raise RecordingError(message, path=source)
    road = (rgb[..., 0] > 127) & (rgb[..., 2] > 127)
    not_road = (rgb[..., 0] > 127) & (rgb[..., 2] <= 127)
    out = np.full(rgb.shape[:2], IGNORE_INDEX, dtype=np.uint8)
    out[not_road] = 0
    out[road] = 1
    return out


def _is_palette_png(data: bytes) -> bool:
    """Whether ``data`` is an indexed-colour PNG (IHDR colour type 3)."""
    return data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 25 and data[25] == 3


def _palette_indices(data: bytes, source: Path) -> Labels:
    """The palette indices of an indexed PNG: the ids, which OpenCV would replace by the
    palette's colours (labels saved with a palette to be viewable)."""
    from PIL import Image as PILImage

    try:
        with PILImage.open(io.BytesIO(data)) as im:
            mode = im.mode
            ids = np.asarray(im, dtype=np.uint8) if mode == "P" else None
    except (OSError, ValueError) as exc:
        raise RecordingError(f"cannot read the indexed label image: {exc}", path=source) from exc
    if ids is None or ids.ndim != 2:
        raise RecordingError(f"expected an 8-bit indexed label image, got mode {mode!r}",
                             path=source)
    return ids


def _read_raw(file: LabelledFile) -> Labels:
    """The label file as stored: single-channel ids, or RGB for ``kitti_road``."""
    try:
        data = file.label.read_bytes()
    except OSError as exc:
        raise RecordingError(f"cannot read label image: {exc.strerror}", path=file.label) from exc
    raw = decode_stored(data, file.label)  # integrity checks (truncation), one decode
    if file.layout != "kitti_road" and _is_palette_png(data):
        return _palette_indices(data, file.label)
    if file.layout == "kitti_road":
        if raw.ndim == 2:  # grey ids: small ids would pass as black
            ids = [int(v) for v in np.unique(raw)[:8]]
            message = (f"KITTI road label is a single-channel (grey) image of values {ids!r} "
                       "(ids?); gt_image_2 labels are colour: magenta (255, 0, 255) road, "
                       "red (255, 0, 0) not road, black don't care")
            raise RecordingError(message, path=file.label)
        return stored_to_rgb(raw, file.label, grayscale_ok=True)
    if raw.ndim != 2:
        shape = (raw.shape, str(raw.dtype))
        message = f"expected a single-channel 8-bit label image, got {shape!r}"
        raise RecordingError(message, path=file.label)
    return raw


def read_labels(file: LabelledFile) -> Labels:
    """Read ``file.label`` as H x W uint8 drivingseg ids; errors name the file."""
    raw = _read_raw(file)
    if file.layout == "kitti_road":
        return _kitti_road_labels(raw, file.label)
    return map_label_ids(raw, file.layout, file.label)


def fine_from_coarse(labels: Labels) -> Labels:
    """Fine labels of a frame labelled with drivingseg's three classes only: road and car
    get their :data:`FINE_CLASSES` ids, background (which lumps the rest) is ignored."""
    out: Labels = _FINE_FROM_COARSE[labels]
    return out


def read_fine_labels(file: LabelledFile) -> Labels:
    """Read ``file.label`` as H x W uint8 ids of :data:`FINE_CLASSES` (255 ignore): CamVid's
    own ids, or for other layouts road and car mapped there and everything else ignored."""
    raw = _read_raw(file)
    if file.layout == "kitti_road":
        return fine_from_coarse(_kitti_road_labels(raw, file.label))
    coarse = map_label_ids(raw, file.layout, file.label)  # refuses unknown ids
    if file.layout != "camvid":
        return fine_from_coarse(coarse)
    fine = raw.copy()
    fine[raw >= len(FINE_CLASSES)] = IGNORE_INDEX
    return fine


def _check_size(file: LabelledFile, labels: Labels, height: int, width: int) -> None:
    """RecordingError naming the label when its size is not its image's ``height x width``."""
    if labels.shape != (height, width):
        message = (
            f"label image is {labels.shape[1]}x{labels.shape[0]} but its camera image "
            f"{file.image.name!r} is {width}x{height} (width x height)"
        )
        raise RecordingError(message, path=file.label)


def load_pair(file: LabelledFile) -> tuple[Image, Labels]:
    """RGB image and drivingseg labels of one frame; sizes must match."""
    image = read_image_rgb(file.image)
    labels = read_labels(file)
    _check_size(file, labels, image.shape[0], image.shape[1])
    return image, labels


def check_pair(file: LabelledFile) -> None:
    """The checks of :func:`load_pair` (label ids or colours, label size against the image's)
    without decoding the image, whose size is read from its header: cheap enough to run on
    every frame before a long scoring run, which would otherwise stop at the first bad one."""
    from PIL import Image as PILImage

    labels = read_labels(file)
    try:
        with PILImage.open(file.image) as im:
            width, height = im.size
    except (OSError, ValueError) as exc:  # not an image: load_pair's reader says why
        read_image_rgb(file.image)
        raise RecordingError(f"cannot read the image's size: {exc}", path=file.image) from exc
    _check_size(file, labels, height, width)


def load_training_pair(file: LabelledFile) -> tuple[Image, Labels]:
    """:func:`load_pair` for training: a KITTI road frame's "not road" pixels (0), cars
    among them, become ``NOT_ROAD_INDEX``, which the loss does not read as background."""
    image, labels = load_pair(file)
    if file.layout == "kitti_road":
        labels = np.where(labels == 0, NOT_ROAD_INDEX, labels).astype(np.uint8)
    return image, labels


def synthetic_frames(seed: int, frames: int, step: int = 1) -> list[tuple[Image, Labels]]:
    """Frames ``0, step, 2*step, ...`` of a synthetic drive with their exact labels."""
    from drivingseg.sensors.synthetic.drive import SyntheticDrive

    out = []
    with SyntheticDrive(seed=seed, frames=frames) as drive:
        for i in range(0, frames, max(1, step)):
            out.append((drive.camera(i).image, drive.labels(i)))
    return out


def synthetic_lidar(seed: int, frames: int, step: int = 1) -> list[npt.NDArray[np.float32]]:
    """The lidar channels (H x W x 4: depth, height, intensity, valid) of the frames that
    :func:`synthetic_frames` gives, each from the scan of the same index, made as the
    fusion node makes them, so that a lidar model trains on what the node feeds it."""
    from drivingseg.fusion.channels import StreamNotes, lidar_channels
    from drivingseg.sensors.synthetic.drive import SyntheticDrive

    out = []
    notes = StreamNotes(f"synthetic drive {seed}")
    with SyntheticDrive(seed=seed, frames=frames) as drive:
        rig = drive.rig()
        for i in range(0, frames, max(1, step)):
            frame = drive.camera(i)
            planes = lidar_channels(drive.lidar(i).points, rig, width=frame.width,
                                    height=frame.height, notes=notes).stack()
            out.append(np.ascontiguousarray(np.moveaxis(planes, 0, -1)))
    return out
