"""Launch files: the shipped ones' arguments (on real data where it matters), and
composing graphs by include."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support.kitti_links import linked_drive

from drivingseg.calibration.load import load_rig_any
from drivingseg.errors import ConfigError
from drivingseg.node.launch import build_graph, load_launch, parse_cli_arguments
from drivingseg.node.processing import FusionNode
from drivingseg.node.runtime import Node
from drivingseg.node.sources import CameraSource


def resolved(file: str, *cli_arguments: str) -> dict[str, Node]:
    """The nodes of ``file`` built with ``name:=value`` arguments, by name."""
    graph = build_graph(load_launch(file, parse_cli_arguments(cli_arguments)))
    return {n.name: n for n in graph.nodes}


def right_camera_drive(kitti_raw_root: Path, tmp_path: Path) -> Path:
    """A KITTI raw drive of camera 3 (the real drive's images and scans, linked in place)."""
    return linked_drive(kitti_raw_root, tmp_path, 3)


def test_calibration_override_is_loaded_for_the_camera_in_use(
    kitti_raw_root: Path, tmp_path: Path
) -> None:
    """pipeline.yaml gave ``calibration`` to the fusion node, which loads a KITTI date
    folder for camera 2 whatever ``camera`` says: with camera:=3 the lidar was projected
    with camera 2's projection (0.54 m of stereo baseline off, ~40 px at 10 m), silently.
    The camera source loads it for its camera and sends it with every frame."""
    drive = right_camera_drive(kitti_raw_root, tmp_path)
    nodes = resolved("pipeline", f"input:={drive}", "camera:=3",
                     f"calibration:={kitti_raw_root}")
    camera, fusion = nodes["camera"], nodes["fusion"]
    assert isinstance(camera, CameraSource) and isinstance(fusion, FusionNode)
    try:
        camera.setup()
        fusion.setup()
        used = fusion.rig or camera.rig
        assert used is not None
        expected = load_rig_any(kitti_raw_root, camera=3)
        np.testing.assert_allclose(used.camera.P, expected.camera.P)
        assert camera.p["calibration"] == str(kitti_raw_root)
    finally:
        camera.shutdown()


def test_replay_bag_passes_calibration_to_the_camera_source() -> None:
    nodes = resolved("replay_bag", "input:=synthetic", "calibration:=my_rig.yaml")
    assert nodes["camera"].p["calibration"] == "my_rig.yaml"
    assert nodes["fusion"].p["calibration"] == ""


def test_replay_bag_passes_stamps_to_both_sources() -> None:
    """A bag of two clocks replays by receive time only if both sources read it so."""
    nodes = resolved("replay_bag", "input:=synthetic", "stamps:=receive")
    assert (nodes["camera"].p["stamps"], nodes["lidar"].p["stamps"]) == ("receive", "receive")
    nodes = resolved("replay_bag", "input:=synthetic")
    assert (nodes["camera"].p["stamps"], nodes["lidar"].p["stamps"]) == ("header", "header")


@pytest.mark.parametrize("file", ["demo", "vehicle", "replay_kitti", "replay_bag"])
def test_record_lidar_reaches_the_recorder(file: str) -> None:
    """README.md promises ``record_lidar:=true`` for the demo's masks.mcap (and the replay
    and vehicle files); demo.yaml and vehicle.yaml did not declare it, so the demo and the
    vehicle could not record a masks.mcap that replays with lidar."""
    assert resolved(file, "input:=synthetic", "record_lidar:=true")["recorder"].p["lidar"] is True
    assert resolved(file, "input:=synthetic")["recorder"].p["lidar"] is False


@pytest.mark.parametrize("value", ["", "bogus", "1", "off"])
def test_overflow_must_name_a_policy(value: str) -> None:
    """``overflow:=`` (say an empty shell variable) used to fall back to drop_oldest in
    silence: a replay meant to block then dropped frames."""
    with pytest.raises(ConfigError, match=rf"replay_kitti\.yaml: qos overflow '{value}' is "
                       r"not one of drop_oldest, block$"):
        load_launch("replay_kitti", parse_cli_arguments(["input:=synthetic",
                                                         f"overflow:={value}"]))
    assert load_launch("replay_kitti", {"input": "synthetic", "overflow": "block"}
                       ).overflow == "block"


def test_an_included_file_s_bad_overflow_names_that_file(tmp_path: Path) -> None:
    (tmp_path / "inner.yaml").write_text("qos: {overflow: drop_newest}\n")
    (tmp_path / "outer.yaml").write_text("include:\n  - file: inner.yaml\n")
    with pytest.raises(ConfigError, match=r"inner\.yaml: qos overflow 'drop_newest'"):
        load_launch(tmp_path / "outer.yaml")


def test_a_leading_tilde_on_the_command_line_is_the_home_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shell expands ``~`` in ``--out ~/runs`` but not in ``out_dir:=~/runs``: the
    outputs went into a folder named ``~`` in the working directory."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    nodes = resolved("replay_kitti", "input:=~/drive", "out_dir:=~/runs",
                     "weights:=~/model.safetensors")
    assert nodes["camera"].p["input"] == str(tmp_path / "home" / "drive")
    assert nodes["recorder"].p["path"] == str(tmp_path / "home" / "runs" / "masks.mcap")
    assert nodes["latency"].p["out_dir"] == str(tmp_path / "home" / "runs")
    assert nodes["segmentation"].p["weights"] == str(tmp_path / "home" / "model.safetensors")
    assert parse_cli_arguments(["out_dir:=runs/~x"])["out_dir"] == "runs/~x"


def test_a_node_name_taken_by_an_include_names_both_files(tmp_path: Path) -> None:
    """A graph of one's own that includes pipeline.yaml and adds a second latency tracker
    named ``latency`` got "node 'latency': a node of that name already exists", naming
    neither pipeline.yaml nor which of the two nodes clashed."""
    mine = tmp_path / "mine.yaml"
    mine.write_text("include:\n  - {file: pipeline.yaml, arguments: {input: synthetic}}\n"
                    "nodes:\n  - {type: latency_tracker, name: latency}\n")
    with pytest.raises(ConfigError, match=r"mine\.yaml: node 'latency' \(latency_tracker\): a "
                       r"node of that name already comes from pipeline\.yaml "
                       r"\(latency_tracker\); rename one$"):
        build_graph(load_launch(mine))


def test_the_format_example_of_launch_readme_builds(tmp_path: Path) -> None:
    """launch/README's Format example is what a user copies to start a graph of their own: it
    used ``$(arg weights)`` and ``$(arg overflow)`` without declaring them and named its node
    ``segmentation``, which pipeline.yaml's node already is, so it was refused at load."""
    readme = (Path(__file__).resolve().parents[2] / "launch" / "README.md").read_text()
    example = readme.split("```yaml\n", 1)[1].split("```", 1)[0]
    file = tmp_path / "my_graph.yaml"
    file.write_text(example)
    desc = load_launch(str(file), parse_cli_arguments(["input:=synthetic:1"]))
    nodes = {n.name: n for n in build_graph(desc).nodes}
    assert {"camera", "segmentation", "latency"} <= set(nodes)
    added = [n for n in desc.nodes if n.path == file]
    assert added and all(n.name in nodes for n in added)


def test_replay_kitti_passes_calibration_to_the_camera_source() -> None:
    """``drivingseg replay DRIVE calibration:=DIR`` (a drive downloaded without its date's
    calibration) was refused as an unknown argument: replay_kitti.yaml did not declare it."""
    nodes = resolved("replay_kitti", "input:=synthetic", "calibration:=my_rig.yaml")
    assert nodes["camera"].p["calibration"] == "my_rig.yaml"
    assert nodes["fusion"].p["calibration"] == ""


def test_the_vehicle_graph_can_capture_cuda_graphs() -> None:
    """vehicle.yaml, the GPU launch file, did not declare ``cuda_graph``: ``cuda_graph:=true``
    was refused as an unknown argument, so the vehicle could not run the network as a CUDA
    graph (docs/MODEL.md: 3.0 ms against 2.0 ms per KITTI frame on an H200)."""
    assert resolved("vehicle", "input:=synthetic", "cuda_graph:=true"
                    )["segmentation"].p["cuda_graph"] is True
    assert resolved("vehicle", "input:=synthetic")["segmentation"].p["cuda_graph"] is False


def test_the_pipeline_passes_ground_refit_every_to_fusion() -> None:
    """The fusion node's ``ground_refit_every`` could be set only by editing a launch file."""
    assert resolved("pipeline", "input:=synthetic", "ground_refit_every:=5"
                    )["fusion"].p["ground_refit_every"] == 5
    assert resolved("pipeline", "input:=synthetic")["fusion"].p["ground_refit_every"] == 1
