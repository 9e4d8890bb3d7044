"""Score several checkpoints alone and every combination of them as a probability-averaging
ensemble on labelled frames: how much independently trained models would gain together
(the upper bound of distilling them into one network).

    python scripts/ensemble_eval.py --data ../shared/data/camvid/train --sequences 0006R0 \
        --weights runs/unet_rgb_holdout_ft/averaged runs/gpu_b16_holdout/averaged

Each model runs in float32 at its own input size (as ``drivingseg eval``); the class
probabilities at the labels' size are averaged and arg-maxed. One line per combination.
"""

from __future__ import annotations

import argparse
import itertools
import json

import numpy as np

from drivingseg.cli._common import progress
from drivingseg.model.config import CLASS_NAMES
from drivingseg.model.data import camvid_sequence, discover, load_pair
from drivingseg.model.infer import Segmenter
from drivingseg.model.metrics import ConfusionMatrix


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="labelled folder (any eval layout)")
    parser.add_argument("--sequences", nargs="*", default=[], help="CamVid sequences to keep")
    parser.add_argument("--weights", nargs="+", required=True, help="two or more checkpoints")
    parser.add_argument("--json", help="also write the scores here")
    args = parser.parse_args()
    files = [f for f in discover(args.data)
             if not args.sequences or camvid_sequence(f.image) in args.sequences]
    segs = [Segmenter(w) for w in args.weights]
    combos = [c for r in range(1, len(segs) + 1)
              for c in itertools.combinations(range(len(segs)), r)]
    matrices = {c: ConfusionMatrix(CLASS_NAMES) for c in combos}
    for file in progress(files, total=len(files), desc="frames"):
        image, labels = load_pair(file)
        probs = []
        for seg in segs:
            p = seg(image, probabilities=True).probs
            assert p is not None
            probs.append(p)
        for combo, cm in matrices.items():
            mean = np.mean([probs[i] for i in combo], axis=0)
            cm.update(labels, mean.argmax(axis=0).astype(np.uint8))
    rows = []
    for combo, cm in matrices.items():
        iou = {s.name: None if s.iou is None else round(100 * s.iou, 2) for s in cm.scores()}
        rows.append({"weights": [args.weights[i] for i in combo], "iou_percent": iou})
        print(" + ".join(args.weights[i] for i in combo), iou)
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"frames": len(files), "rows": rows}, out, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
