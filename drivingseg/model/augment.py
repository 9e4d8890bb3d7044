"""Augmentations applied consistently to image, lidar channels and labels, and the tensors.

One random draw (scale, crop offset, flip, colour) is applied to every array of a sample:
the image and stored teacher probabilities (``soft``) are resized bilinearly, lidar
channels, labels and fine labels (``fine``) with nearest neighbour (labels must stay ids,
sparse lidar pixels must not be smeared), so a pixel's label stays with its pixel. Colour
jitter touches the image only.
"""

from __future__ import annotations

import multiprocessing
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt
import torch
from torch.utils.data import Dataset

from drivingseg.errors import ModelError
from drivingseg.model.config import CLASS_NAMES, FINE_CLASSES, IGNORE_INDEX, InputSpec

__all__ = [
    "Augmenter", "CopyPaste", "Sample", "SegmentationDataset", "normalise", "resize_sample",
    "seed_worker",
]

Image = npt.NDArray[np.uint8]
Labels = npt.NDArray[np.uint8]
Lidar = npt.NDArray[np.float32]


@dataclass
class Sample:
    """One frame: RGB uint8 H x W x 3, labels H x W uint8, optional lidar H x W x C float32,
    optional teacher class probabilities ``soft`` H x W x classes (float16 or 32) and
    optional fine labels ``fine`` H x W uint8 (:data:`FINE_CLASSES` ids)."""

    image: Image
    labels: Labels
    lidar: Lidar | None = None
    soft: npt.NDArray[np.floating] | None = None
    fine: Labels | None = None


def _resize(sample: Sample, width: int, height: int) -> Sample:
    size = (width, height)
    image: Image = np.asarray(
        cv2.resize(sample.image, size, interpolation=cv2.INTER_LINEAR), dtype=np.uint8)
    labels: Labels = np.asarray(
        cv2.resize(sample.labels, size, interpolation=cv2.INTER_NEAREST_EXACT), dtype=np.uint8)
    fine: Labels | None = None
    if sample.fine is not None:
        fine = np.asarray(cv2.resize(sample.fine, size, interpolation=cv2.INTER_NEAREST_EXACT),
                          dtype=np.uint8)
    lidar: Lidar | None = None
    if sample.lidar is not None:
        small = np.asarray(cv2.resize(sample.lidar, size, interpolation=cv2.INTER_NEAREST_EXACT),
                           dtype=np.float32)
        lidar = small[:, :, None] if small.ndim == 2 else small
    soft = None
    if sample.soft is not None:
        soft = np.asarray(cv2.resize(sample.soft.astype(np.float32), size,
                                     interpolation=cv2.INTER_LINEAR), dtype=np.float32)
    return Sample(image, labels, lidar, soft, fine)


def resize_sample(sample: Sample, spec: InputSpec) -> Sample:
    """Resize the whole frame to the model input size, for a batch of one size (inference
    keeps a frame's aspect ratio, :func:`~drivingseg.model.infer.input_size`: the same for
    frames of the input's 4:3)."""
    return _resize(sample, spec.width, spec.height)


class Augmenter:
    """Random scale + crop to ``spec``'s size, horizontal flip and colour jitter.

    Scale 1 is the frame resized, keeping its aspect ratio, just to cover the input size (a
    4:3 frame fills the 4:3 input exactly, as inference shows it); ``scale_range`` zooms in
    (> 1) and out (< 1, padded with ignore). Frames are never squashed.
    """

    def __init__(
        self,
        spec: InputSpec,
        *,
        scale_range: tuple[float, float] = (0.8, 1.6),
        flip: bool = True,
        jitter: float = 0.3,
        seed: int = 0,
    ) -> None:
        self.spec = spec
        self.scale_range = scale_range
        self.flip = flip
        self.jitter = jitter
        self.rng = np.random.default_rng(seed)

    def reseed(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def __call__(self, sample: Sample) -> Sample:
        out_w, out_h = self.spec.width, self.spec.height
        h, w = sample.labels.shape
        base = max(out_w / w, out_h / h)
        s = base * float(self.rng.uniform(*self.scale_range))
        rw, rh = max(1, round(w * s)), max(1, round(h * s))
        res = _resize(sample, rw, rh)
        res = self._pad(res, max(out_w, rw), max(out_h, rh))
        x0 = int(self.rng.integers(0, res.labels.shape[1] - out_w + 1))
        y0 = int(self.rng.integers(0, res.labels.shape[0] - out_h + 1))
        crop = (slice(y0, y0 + out_h), slice(x0, x0 + out_w))
        image, labels = res.image[crop], res.labels[crop]
        lidar = None if res.lidar is None else res.lidar[crop]
        soft = None if res.soft is None else res.soft[crop]
        fine = None if res.fine is None else res.fine[crop]
        if self.flip and self.rng.random() < 0.5:
            image, labels = image[:, ::-1], labels[:, ::-1]
            lidar = None if lidar is None else lidar[:, ::-1]
            soft = None if soft is None else soft[:, ::-1]
            fine = None if fine is None else fine[:, ::-1]
        if self.jitter > 0:
            image = self._colour(image)
        return Sample(
            np.ascontiguousarray(image),
            np.ascontiguousarray(labels),
            None if lidar is None else np.ascontiguousarray(lidar),
            None if soft is None else np.ascontiguousarray(soft),
            None if fine is None else np.ascontiguousarray(fine),
        )

    @staticmethod
    def _pad(sample: Sample, width: int, height: int) -> Sample:
        h, w = sample.labels.shape
        if (h, w) == (height, width):
            return sample
        image = np.zeros((height, width, 3), dtype=np.uint8)
        labels = np.full((height, width), IGNORE_INDEX, dtype=np.uint8)
        image[:h, :w], labels[:h, :w] = sample.image, sample.labels
        lidar = None
        if sample.lidar is not None:
            lidar = np.zeros((height, width, sample.lidar.shape[2]), dtype=np.float32)
            lidar[:h, :w] = sample.lidar
        soft = None
        if sample.soft is not None:  # padding is ignored by every loss term
            soft = np.zeros((height, width, sample.soft.shape[2]), dtype=np.float32)
            soft[:h, :w] = sample.soft
        fine = None
        if sample.fine is not None:
            fine = np.full((height, width), IGNORE_INDEX, dtype=np.uint8)
            fine[:h, :w] = sample.fine
        return Sample(image, labels, lidar, soft, fine)

    def _colour(self, image: Image) -> Image:
        j = self.jitter
        img = image.astype(np.float32)
        grey = img @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        sat = float(self.rng.uniform(1 - j, 1 + j))
        img = grey[..., None] + (img - grey[..., None]) * sat
        contrast = float(self.rng.uniform(1 - j, 1 + j))
        img = (img - float(grey.mean())) * contrast + float(grey.mean())
        img = img * float(self.rng.uniform(1 - j, 1 + j))
        img += self.rng.uniform(-8, 8, size=3).astype(np.float32)
        return np.clip(img, 0, 255).astype(np.uint8)


class CopyPaste:
    """Paste one class's pixels (cars) of another augmented frame onto a sample.

    Simple Copy-Paste (Ghiasi et al., CVPR 2021) for semantic labels: with probability
    ``probability`` a donor frame holding at least ``min_pixels`` of ``class_id`` is drawn,
    augmented on its own (new scale, crop, flip, colour) and its ``class_id`` pixels replace
    the sample's image, lidar and label pixels at the same place. The donor keeps its own
    position in the picture, so pasted cars stay on the road band, at plausible sizes.
    Cars are a few percent of CamVid's pixels: this shows the network more of them, in new
    surroundings, without new data. Measured on held-out CamVid it did not raise car IoU
    (docs/MODEL.md, session 7), so the config files leave it off; one member of the
    shipped ensemble was trained with it.
    """

    def __init__(self, samples: list[Sample], class_id: int, probability: float,
                 min_pixels: int = 400) -> None:
        if not 0.0 <= probability <= 1.0:
            raise ModelError(f"copy-paste probability {probability!r} is not in [0, 1]")
        self.samples = samples
        self.class_id = class_id
        self.probability = probability
        self.donors = [i for i, s in enumerate(samples)
                       if int(np.count_nonzero(s.labels == class_id)) >= min_pixels]

    def __call__(self, sample: Sample, augmenter: Augmenter) -> Sample:
        rng = augmenter.rng
        if not self.donors or self.probability <= 0 or rng.random() >= self.probability:
            return sample
        donor = augmenter(self.samples[self.donors[int(rng.integers(len(self.donors)))]])
        if donor.labels.shape != sample.labels.shape:
            raise ModelError(f"donor size {donor.labels.shape!r} differs from the sample's "
                             f"{sample.labels.shape!r}: augment both to one input size")
        mask = donor.labels == self.class_id
        image, labels = sample.image.copy(), sample.labels.copy()
        image[mask], labels[mask] = donor.image[mask], self.class_id
        lidar = sample.lidar
        if lidar is not None and donor.lidar is not None:
            lidar = lidar.copy()
            lidar[mask] = donor.lidar[mask]
        fine = sample.fine
        if fine is not None:
            fine = fine.copy()
            fine[mask] = FINE_CLASSES.index(CLASS_NAMES[self.class_id])
        return Sample(image, labels, lidar, fine=fine)


def normalise(image: Image, spec: InputSpec) -> torch.Tensor:
    """uint8 H x W x 3 RGB -> float32 3 x H x W, scaled to [0, 1] and standardised."""
    t = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)
    mean = torch.tensor(spec.mean, dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(spec.std, dtype=torch.float32).view(3, 1, 1)
    return (t - mean) / std


class SegmentationDataset(Dataset[dict[str, torch.Tensor]]):
    """In-memory samples -> ``{"input": C x H x W float32, "labels": H x W int64}``, plus
    ``"soft"`` (teacher probabilities, classes x H x W float32) and ``"fine"`` (fine labels,
    H x W int64) where the samples carry them.

    With an ``augmenter`` each access draws a new augmentation (and, with ``copy_paste``,
    may paste another frame's cars onto it); without one the whole frame is resized to
    the input size. :meth:`reseed` starts an epoch's augmentation stream, in this process
    and in the loader's worker processes alike (persistent workers read it from shared
    memory), so an epoch draws the same augmentations whether the run was resumed or not.
    """

    def __init__(
        self, samples: list[Sample], spec: InputSpec, augmenter: Augmenter | None = None,
        copy_paste: CopyPaste | None = None,
    ) -> None:
        self.samples = samples
        self.spec = spec
        self.augmenter = augmenter
        self.copy_paste = copy_paste
        self._epoch_seed = multiprocessing.RawValue("q", -1)  # -1: never reseeded
        self._worker_seed = -1

    def reseed(self, seed: int) -> None:
        """Start the augmentation stream of an epoch (``seed`` >= 0): here at once, in each
        worker process (as ``(seed, worker id)``) at its next sample."""
        if seed < 0:
            raise ModelError(f"augmentation seed must be >= 0, got {seed!r}")
        self._epoch_seed.value = seed
        if self.augmenter is not None:
            self.augmenter.reseed(seed)

    def _follow_epoch_seed(self) -> None:
        """In a worker process: reseed the augmenter when a new epoch's seed was set."""
        info = torch.utils.data.get_worker_info()
        seed = int(self._epoch_seed.value)
        if info is None or seed < 0 or seed == self._worker_seed or self.augmenter is None:
            return
        self.augmenter.reseed(int(np.random.SeedSequence([seed, info.id]).generate_state(1)[0]))
        self._worker_seed = seed

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        sample = self.samples[index]
        if self.augmenter is not None:
            self._follow_epoch_seed()
            sample = self.augmenter(sample)
            if self.copy_paste is not None:
                sample = self.copy_paste(sample, self.augmenter)
        else:
            sample = resize_sample(sample, self.spec)
        x = normalise(sample.image, self.spec)
        if sample.lidar is not None:
            x = torch.cat([x, torch.from_numpy(sample.lidar).permute(2, 0, 1).float()], dim=0)
        out = {"input": x, "labels": torch.from_numpy(sample.labels.astype(np.int64))}
        if sample.soft is not None:
            soft = torch.from_numpy(np.ascontiguousarray(sample.soft, dtype=np.float32))
            out["soft"] = soft.permute(2, 0, 1)
        if sample.fine is not None:
            out["fine"] = torch.from_numpy(sample.fine.astype(np.int64))
        return out


def seed_worker(worker_id: int) -> None:
    """``DataLoader`` ``worker_init_fn``: give each worker process its own augmentation stream.

    A forked worker inherits the main process's generator, so without this every worker
    draws the same scales, crops and flips in the same order. torch seeds each worker as
    ``base_seed + worker_id`` (``base_seed`` from the loader's generator), so the streams
    are distinct and still reproducible. (OpenCV's thread count is left alone:
    ``cv2.setNumThreads`` in a forked child deadlocks once the parent has used its pool.)
    """
    info = torch.utils.data.get_worker_info()
    dataset = None if info is None else info.dataset
    augmenter = getattr(dataset, "augmenter", None)
    if isinstance(augmenter, Augmenter):
        augmenter.reseed(torch.initial_seed() % 2**63)
