"""``drivingseg synth``'s options are checked, and named, before anything is rendered."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from drivingseg.calibration.rig_yaml import load_rig, save_rig
from drivingseg.cli import main
from drivingseg.sensors.synthetic import writer
from drivingseg.sensors.synthetic.drive import default_rig_path


@pytest.mark.parametrize(("options", "message"), [
    (["--workers", "0"], "--workers must be at least 1, got 0"),
    (["--workers", "-2"], "--workers must be at least 1, got -2"),
    (["--frames", "0"], "--frames must be at least 1, got 0"),
    (["--seed", "-1"], "--seed must be 0 or more, got -1"),
])
def test_bad_options_are_refused_before_rendering(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str], message: str
) -> None:
    """--workers 0 (or below) used to render all frames in this process and exit 0; --frames
    and --seed were refused by the renderer without the option's name."""
    out = tmp_path / "out"
    assert main(["synth", str(out), "--frames", "1", *options]) == 2
    assert capsys.readouterr().err == f"drivingseg synth: error: {message}\n"
    assert not out.exists()


def test_a_distorted_rig_is_refused_before_rendering(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--rig with lens distortion used to render every frame and only then fail on writing
    the KITTI calibration."""
    rig = load_rig(default_rig_path())
    camera = replace(rig.camera, distortion_model="plumb_bob",
                     D=np.array([-0.3, 0.1, 0.0, 0.0, 0.0]), image_rectified=False)
    rig_path = tmp_path / "distorted.yaml"
    save_rig(replace(rig, camera=camera), rig_path)

    def no_render(*args: object) -> None:
        raise AssertionError("a frame was rendered")

    monkeypatch.setattr(writer, "_write_frame", no_render)
    out = tmp_path / "out"
    argv = ["synth", str(out), "--frames", "3", "--workers", "1", "--rig", str(rig_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"drivingseg synth: error: {rig_path}: the synthetic camera renders")
    assert not any(out.rglob("*.png"))
