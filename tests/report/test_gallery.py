"""Gallery panels and titles of the worst frames."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np

from drivingseg.report.aggregate import GalleryPick
from drivingseg.report.gallery import gallery_items
from drivingseg.report.inputs import classify_input
from drivingseg.report.worker import FrameResult


def test_titles_tell_inputs_of_the_same_folder_name_apart(tmp_path: Path,
                                                          synthetic_drive: Path) -> None:
    """Two recordings of one drive name (two date folders, or a drive and its re-export)
    gave two gallery entries titled alike, "0000000000 (synthetic <drive>): ...", with
    nothing to say which input each was."""
    other = tmp_path / "copy" / synthetic_drive.parent.name
    shutil.copytree(synthetic_drive.parent, other)
    specs = [classify_input(synthetic_drive, 0), classify_input(other / synthetic_drive.name, 1)]
    assert Path(specs[0].path).name == Path(specs[1].path).name
    ok, png = cv2.imencode(".png", np.zeros((375, 1242), dtype=np.uint8))
    assert ok
    picks = [GalleryPick(FrameResult(spec.index, 0, spec.frames[0].name, spec.frames[0].image,
                                     {"read": 1.0}, png.tobytes(), mean_iou=0.5),
                         "lowest mean IoU 50.0 %") for spec in specs]
    titles = [item.title for item in gallery_items(specs, picks)]
    assert titles[0] != titles[1]
    assert titles[1] == (f"0000000000 (input 1, synthetic {synthetic_drive.name}): "
                         "lowest mean IoU 50.0 %")



def test_box_panel_caption_names_every_colour_it_draws(tmp_path: Path) -> None:
    """Don't-care boxes (small, hidden, truncated, Truck, Tram) are drawn grey, and the
    caption named only green and orange: a grey box read as a missed car."""
    from drivingseg.detect.evaluate import FrameMatch
    from drivingseg.detect.gt import GtBox

    root = tmp_path / "training"
    (root / "image_2").mkdir(parents=True)
    (root / "label_2").mkdir()
    cv2.imwrite(str(root / "image_2" / "000000.png"), np.zeros((60, 80, 3), dtype=np.uint8))
    (root / "label_2" / "000000.txt").write_text(
        "Car 0.0 0 0.0 5 5 30 40 1.5 1.6 4.0 1.0 1.5 10.0 0.0\n")
    spec = classify_input(tmp_path, 0)
    gt = (GtBox((5.0, 5.0, 30.0, 40.0), "Car", 10.0, False, "label"),
          GtBox((40.0, 5.0, 70.0, 40.0), "Truck", 20.0, True, "label"))
    ok, png = cv2.imencode(".png", np.zeros((60, 80), dtype=np.uint8))
    assert ok
    match = FrameMatch(scores={0.5: (), 0.7: ()}, tp={0.5: (), 0.7: ()}, n_gt=1,
                       range_pairs=())
    frame = FrameResult(0, 0, "000000", spec.frames[0].image, {"read": 1.0}, png.tobytes(),
                        gt_boxes=gt, match=match, missed_boxes=1)
    (item,) = gallery_items([spec], [GalleryPick(frame, "missed 1 of 1 boxes")])
    caption, panel = item.panels[-1]
    colours = {tuple(int(v) for v in px) for px in panel.reshape(-1, 3)} - {(0, 0, 0)}
    assert colours == {(40, 220, 60), (150, 150, 150)}
    assert caption == ("boxes: ground truth green, don't care grey, predicted orange "
                       "(score, range)")
