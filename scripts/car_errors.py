"""Where a model's car errors on one CamVid drive come from (a diagnostic for docs/MODEL.md).

Prints car IoU under shifts of the car logit (is the threshold the lever?), how many false
and missed car pixels lie near a labelled car's edge (boundaries?), the share of false car
pixels in blobs that touch no labelled car, the true CamVid class (of the 11) under the false
car pixels, and missed car pixels by the size of the labelled car blob (small, distant cars?).

    python scripts/car_errors.py --weights runs/unet_rgb_holdout_ft/averaged.safetensors \\
        --data ../shared/data/camvid/train --sequence 0006R0
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np
import torch

from drivingseg.model.data import camvid_sequence, discover, load_pair
from drivingseg.model.infer import Segmenter

CAMVID = ("sky", "building", "pole", "road", "pavement", "tree", "sign", "fence", "car",
          "pedestrian", "bicyclist", "unlabelled")
SHIFTS = (-1.0, -0.5, 0.0, 0.5)
AREAS = (0, 500, 2000, 10000, 10**9)
NEAR_PX = (1, 2, 4)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default="default")
    ap.add_argument("--data", default="../shared/data/camvid/train")
    ap.add_argument("--sequence", default="0006R0")
    args = ap.parse_args()
    torch.set_num_threads(1)
    seg = Segmenter(args.weights)
    files = [f for f in discover(args.data) if camvid_sequence(f.image) == args.sequence]
    shifted = {s: np.zeros(3, np.int64) for s in SHIFTS}  # tp, fn, fp
    fp_near = dict.fromkeys(NEAR_PX, 0)
    fn_near = dict.fromkeys(NEAR_PX, 0)
    fp_by_class = np.zeros(len(CAMVID), np.int64)
    gt_area, fn_area = np.zeros(len(AREAS) - 1), np.zeros(len(AREAS) - 1)
    fp_alone = fp_all = fn_all = 0
    for f in files:
        image, labels = load_pair(f)
        raw = cv2.imread(str(f.label), cv2.IMREAD_UNCHANGED)  # the 11 CamVid ids
        if raw is None:
            raise SystemExit(f"{f.label}: cannot read the label PNG")
        out = seg(image, probabilities=True)
        assert out.probs is not None
        valid = labels != 255
        car = (labels == 2) & valid
        logp = np.log(np.maximum(out.probs, 1e-9))
        for s, acc in shifted.items():
            logp_s = logp.copy()
            logp_s[2] += s
            p = (logp_s.argmax(0) == 2) & valid
            acc += ((car & p).sum(), (car & ~p).sum(), (p & ~car).sum())
        pred = (out.class_ids == 2) & valid
        fp, fn = pred & ~car, car & ~pred
        fp_all, fn_all = fp_all + int(fp.sum()), fn_all + int(fn.sum())
        d_out = cv2.distanceTransform((~car).astype(np.uint8), cv2.DIST_L2, 3)
        d_in = cv2.distanceTransform(car.astype(np.uint8), cv2.DIST_L2, 3)
        for k in NEAR_PX:
            fp_near[k] += int((fp & (d_out <= k)).sum())
            fn_near[k] += int((fn & (d_in <= k)).sum())
        fp_by_class += np.bincount(raw[fp].ravel(), minlength=len(CAMVID))[: len(CAMVID)]
        n, blobs, _, _ = cv2.connectedComponentsWithStats(pred.astype(np.uint8))
        fp_alone += sum(int((blobs == i).sum()) for i in range(1, n) if not car[blobs == i].any())
        n, blobs, stats, _ = cv2.connectedComponentsWithStats(car.astype(np.uint8))
        for i in range(1, n):
            b = int(np.searchsorted(AREAS, stats[i, cv2.CC_STAT_AREA], side="right")) - 1
            gt_area[b] += stats[i, cv2.CC_STAT_AREA]
            fn_area[b] += int((fn & (blobs == i)).sum())
    print(f"{len(files)} frames of {args.sequence}; weights {args.weights}")
    for s, (tp, fn_, fp_) in shifted.items():
        print(f"car logit {s:+.2f}: IoU {tp / (tp + fn_ + fp_):.2%}  "
              f"precision {tp / (tp + fp_):.1%}  recall {tp / (tp + fn_):.1%}")
    for k in NEAR_PX:
        print(f"within {k} px of a labelled car's edge: {fp_near[k] / fp_all:.1%} of false, "
              f"{fn_near[k] / fn_all:.1%} of missed car pixels")
    print(f"false car pixels in blobs touching no labelled car: {fp_alone / fp_all:.1%}")
    order = np.argsort(-fp_by_class)
    print("false car pixels by CamVid class: " + ", ".join(
        f"{CAMVID[i]} {fp_by_class[i] / fp_all:.1%}" for i in order if fp_by_class[i]))
    for b in range(len(AREAS) - 1):
        print(f"labelled car blobs of {AREAS[b]}-{AREAS[b + 1]} px: {gt_area[b]:.0f} px, "
              f"{fn_area[b] / max(gt_area[b], 1):.1%} missed ({fn_area[b] / fn_all:.1%} of misses)")


if __name__ == "__main__":
    main()
