"""The benchmark scripts' helpers (``benchmarks/``): checks, ratios and the code paths that
must keep working as the package changes under them."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import _common  # noqa: E402


def test_common_imports_this_checkout(tmp_path: Path) -> None:
    """``python benchmarks/NAME.py`` has benchmarks/ on sys.path, not the repository: the
    scripts must still time this checkout's package, not the editable install's."""
    code = ("import sys; sys.path[0] = sys.argv[1]; import _common, drivingseg; "
            "print(drivingseg.__file__)")
    out = subprocess.run([sys.executable, "-c", code, str(BENCH)], cwd=tmp_path, check=True,
                         capture_output=True, text=True).stdout.strip()
    assert Path(out).resolve().is_relative_to(REPO)


@pytest.mark.parametrize("text", ["0", "-3", "two"])
def test_positive_int_rejects(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=repr(text).strip("'")):
        _common.positive_int(text)


def test_positive_int_in_a_parser() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=_common.positive_int, default=5)
    assert parser.parse_args(["--runs", "3"]).runs == 3
    with pytest.raises(SystemExit):
        parser.parse_args(["--runs", "0"])


def test_check_agreement() -> None:
    base = np.zeros((4, 5), np.uint8)
    near = base.copy()
    assert _common.check_agreement("same", near, base) == 1.0
    near[0, 0] = 2
    assert _common.check_agreement("one pixel", near, base, minimum=0.9) == pytest.approx(0.95)
    with pytest.raises(_common.BenchmarkError, match=r"broken backend: 95\.00%"):
        _common.check_agreement("broken backend", near, base, minimum=0.99)
    with pytest.raises(_common.BenchmarkError, match=r"\(4, 4\)"):
        _common.label_agreement(base[:, :4], base)


def test_big_sensor_recorder_writes(tmp_path: Path) -> None:
    """The recorder row opens its file as the graph does (``open_outputs``) before writing."""
    import bench_big_sensor

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (375, 1242, 3), dtype=np.uint8)
    ids = rng.integers(0, 3, (375, 1242), dtype=np.uint8)
    for fmt in ("raw", "jpeg"):
        assert bench_big_sensor.recorder_ms(image, ids, fmt, 2) > 0.0


def _result(fps: float) -> dict[str, Any]:
    return {"fps": fps}


def test_replay_ratios_against_the_same_run() -> None:
    import bench_replay

    results = {"as fast as possible": _result(12.0), "fast, no proposals": _result(16.0),
               "fast, float32": _result(8.0)}
    r = bench_replay.ratios(results)
    assert r == {"proposals_on_vs_off": 0.75, "default_precision_vs_float32": 1.5}
    assert bench_replay.ratios(results, 20.0)["threaded_vs_sequential"] == 0.8


def test_sequential_loop_warms_up_as_the_node(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    """The loop compared with the threaded graph warms the trace up as many times as the
    segmentation node does before frame 0, so neither pays the trace's optimisation."""
    import bench_replay

    import drivingseg.model.infer as infer
    import drivingseg.sensors.kitti_raw as kitti_raw

    calls: list[tuple[int, ...]] = []

    class FakeSegmenter:
        def __init__(self, *args: object, **kwargs: object) -> None:
            pass

        def __call__(self, image: np.ndarray, *args: object, **kwargs: object) -> None:
            calls.append(image.shape)

    class Frame:
        image = np.zeros((4, 6, 3), np.uint8)

    class FakeDrive:
        def __init__(self, path: Path) -> None:
            pass

        def __enter__(self) -> FakeDrive:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

        def __len__(self) -> int:
            return 3

        def camera(self, i: int) -> Frame:
            return Frame()

        def lidar(self, i: int) -> None:
            return None

    monkeypatch.setattr(infer, "Segmenter", FakeSegmenter)
    monkeypatch.setattr(kitti_raw, "KittiRawDrive", FakeDrive)
    assert bench_replay.sequential_fps(tmp_path, "w", 0) > 0.0
    assert bench_replay.node_warm_up_calls() >= 2
    assert len(calls) == bench_replay.node_warm_up_calls() + 3


def test_smp_benchmark_without_smp_says_how_to_set_it_up(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import bench_unet_vs_smp

    monkeypatch.setitem(sys.modules, "segmentation_models_pytorch", None)
    assert bench_unet_vs_smp.main(["--data", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert sys.executable in err
    assert "python3 -m venv" in err and "segmentation-models-pytorch" in err
    assert "docs/MODEL.md" in err


def test_smp_benchmark_without_camvid_skips(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    import bench_unet_vs_smp

    monkeypatch.setitem(sys.modules, "segmentation_models_pytorch", None)
    assert bench_unet_vs_smp.main(["--data", str(tmp_path / "none")]) == 0
    assert "skipped: CamVid not found" in capsys.readouterr().out
