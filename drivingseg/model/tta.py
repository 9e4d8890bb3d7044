"""Test-time augmentation for offline scoring: average a model's class probabilities over
rescaled and mirrored views of each frame.

A network trained from scratch on a few hundred frames sees a car at one scale and one
orientation per training sample; asked at several, its errors differ from view to view, so
their mean is right more often (as the ensemble's members are). :class:`TTASegmenter` runs
one :class:`~drivingseg.model.infer.Segmenter` per scale (each with its own input buffers
and its own converted copy of the model: 7.8 MB each for the default) on the frame and,
with ``flip``, on its mirror image, and averages the softmax at the frame's size. Each view
costs a forward pass at its size, so ``multiscale`` (six scales, both orientations) costs
about 17 single-view passes: a mode for ``drivingseg eval`` and ``drivingseg report``, not
for the 10 Hz streaming node.

The views are a :class:`~drivingseg.model.config.TTAConfig`; ``--tta`` names
one of its presets.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import numpy.typing as npt
import torch

from drivingseg.model.checkpoint import Checkpoint, load_checkpoint
from drivingseg.model.config import LIDAR_CHANNELS, TTAConfig
from drivingseg.model.infer import RunOptions, Segmentation, Segmenter, check_class_prob

__all__ = ["TTASegmenter", "scoring_segmenter"]


def _snap(size: float, multiple: int) -> int:
    """``size`` rounded to the nearest positive multiple of ``multiple``."""
    return max(multiple, round(size / multiple) * multiple)


def _mirror_lidar(lidar: npt.NDArray[np.float32], hw: tuple[int, ...]) -> npt.NDArray[np.float32]:
    """Lidar channels (4 x H x W or H x W x 4) mirrored left-right like the image."""
    arr = np.asarray(lidar, dtype=np.float32)
    axis = 2 if arr.ndim == 3 and arr.shape[0] == LIDAR_CHANNELS and arr.shape[1:] == hw else 1
    return np.ascontiguousarray(np.flip(arr, axis=axis))


class TTASegmenter:
    """A model run on several views of each frame, class probabilities averaged:
    ``TTASegmenter("ensemble", tta_preset("multiscale"))(rgb).class_ids``.

    Same call and results as :class:`~drivingseg.model.infer.Segmenter`; ``spec`` is the
    model's own (scale 1) input.
    """

    def __init__(
        self,
        weights: str | os.PathLike[str] | Checkpoint,
        tta: TTAConfig,
        device: str | torch.device = "cpu",
        fp16: bool | None = None,
        options: RunOptions | None = None,
        resize: str = "keep_aspect",
    ) -> None:
        ckpt = weights if isinstance(weights, Checkpoint) else load_checkpoint(weights)
        self.tta = tta
        self.config, self.spec, self.classes = ckpt.config, ckpt.spec, ckpt.classes
        multiple = 2 ** ckpt.config.depth
        self._views: list[Segmenter] = []
        for scale in tta.scales:
            spec = dataclasses.replace(ckpt.spec,
                                       width=_snap(ckpt.spec.width * scale, multiple),
                                       height=_snap(ckpt.spec.height * scale, multiple))
            self._views.append(Segmenter(dataclasses.replace(ckpt, spec=spec), device=device,
                                         fp16=fp16, options=options, resize=resize))
        self.device, self.dtype = self._views[0].device, self._views[0].dtype

    @property
    def input_sizes(self) -> list[tuple[int, int]]:
        """Width x height of each scale's input."""
        return [(s.spec.width, s.spec.height) for s in self._views]

    def __call__(
        self,
        image: npt.NDArray[np.uint8],
        lidar: npt.NDArray[np.float32] | None = None,
        *,
        probabilities: bool = True,
        class_prob: int | None = None,
    ) -> Segmentation:
        """Segment one RGB frame from the mean class probabilities of every view."""
        check_class_prob(class_prob, self.classes)
        hw = tuple(image.shape[:2])
        mirrored = np.ascontiguousarray(image[:, ::-1]) if self.tta.flip else None
        mirrored_lidar = (_mirror_lidar(lidar, hw)
                          if self.tta.flip and lidar is not None else None)
        total: npt.NDArray[np.float32] | None = None
        for seg in self._views:
            views = [(image, lidar, False)]
            if mirrored is not None:
                views.append((mirrored, mirrored_lidar, True))
            for frame, channels, flipped in views:
                probs = seg(frame, channels, probabilities=True).probs
                assert probs is not None
                if flipped:
                    probs = probs[:, :, ::-1]
                total = probs.copy() if total is None else total + probs
        assert total is not None
        total /= self.tta.views
        ids = total.argmax(axis=0).astype(np.uint8)
        one = np.ascontiguousarray(total[class_prob]) if class_prob is not None else None
        return Segmentation(ids, total if probabilities else None, one)


def scoring_segmenter(
    weights: str | os.PathLike[str] | Checkpoint,
    tta: TTAConfig | None = None,
    device: str | torch.device = "cpu",
    fp16: bool | None = None,
    resize: str = "keep_aspect",
) -> Segmenter | TTASegmenter:
    """A plain :class:`~drivingseg.model.infer.Segmenter` where ``tta`` asks for one view at
    the model's own size (or is None), else a :class:`TTASegmenter`."""
    if tta is None or tta.identity:
        return Segmenter(weights, device=device, fp16=fp16, resize=resize)
    return TTASegmenter(weights, tta, device=device, fp16=fp16, resize=resize)
