"""What a :class:`~drivingseg.model.infer.Segmenter` returns, and how the logits at the
network's input size become it at the frame's size: upsampled, arg-max, softmax.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt
import torch
from torch.nn import functional

__all__ = ["Segmentation", "argmax_planes", "finish_numpy", "finish_torch"]


@dataclass(frozen=True, eq=False)
class Segmentation:
    """``class_ids`` H x W uint8 (0 background, 1 road, 2 car); ``probs`` classes x H x W.

    ``class_prob`` (H x W) is one class's probability when asked for with ``class_prob=``:
    the softmax at the model's input size, resized bilinearly, several times cheaper than
    ``probs`` at a large frame's size (what the streaming node uses for proposals).
    """

    class_ids: npt.NDArray[np.uint8]
    probs: npt.NDArray[np.float32] | None
    class_prob: npt.NDArray[np.float32] | None = None


def argmax_planes(planes: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
    """uint8 H x W id of the largest of C x H x W planes (the first of equals, as argmax)."""
    ids, best = np.zeros(planes.shape[1:], dtype=np.uint8), planes[0].copy()
    for c in range(1, planes.shape[0]):
        np.copyto(ids, np.uint8(c), where=planes[c] > best)
        if c + 1 < planes.shape[0]:
            np.maximum(best, planes[c], out=best)
    return ids


def finish_torch(logits: torch.Tensor, height: int, width: int, probabilities: bool,
                  class_prob: int | None = None) -> Segmentation:
    """On the logits' device (CUDA): upsample, arg-max, softmax, then copy to the host.
    Tests run it on CPU tensors against :func:`finish_numpy`."""
    one = None
    if class_prob is not None:
        small = torch.softmax(logits.float(), dim=0)[class_prob][None, None]
        one = functional.interpolate(small, size=(height, width), mode="bilinear",
                                     align_corners=False)[0, 0].cpu().numpy()
    if (height, width) != tuple(logits.shape[1:]):
        logits = functional.interpolate(logits[None].float(), size=(height, width),
                                        mode="bilinear", align_corners=False)[0]
    ids = logits.argmax(dim=0).to(torch.uint8).cpu().numpy()
    probs = torch.softmax(logits.float(), dim=0).cpu().numpy() if probabilities else None
    return Segmentation(ids, probs, one)

def finish_numpy(logits: torch.Tensor, height: int, width: int, probabilities: bool,
                  class_prob: int | None = None) -> Segmentation:
    """CPU: OpenCV's bilinear resize (torch's ``align_corners=False`` convention) of each
    class plane and a plane-by-plane arg-max: 4-6x faster than resizing H x W x C and
    ``argmax(axis=2)`` at 1920 x 1200, same ids (``benchmarks/bench_big_sensor.py``)."""
    planes = np.ascontiguousarray(logits.float().numpy())  # C x h x w
    one = None
    if class_prob is not None:
        e_small = np.exp(planes - planes.max(axis=0))
        small = np.ascontiguousarray(e_small[class_prob] / e_small.sum(axis=0))
        one = np.asarray(cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR),
                         dtype=np.float32)
    if (height, width) != planes.shape[1:]:
        up = np.empty((planes.shape[0], height, width), dtype=np.float32)
        for c, plane in enumerate(planes):
            cv2.resize(plane, (width, height), dst=up[c], interpolation=cv2.INTER_LINEAR)
        planes = up
    ids = argmax_planes(planes)
    if not probabilities:
        return Segmentation(ids, None, one)
    e = np.exp(planes - planes.max(axis=0))
    e /= e.sum(axis=0)
    return Segmentation(ids, e, one)
