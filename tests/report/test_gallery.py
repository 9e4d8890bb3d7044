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
