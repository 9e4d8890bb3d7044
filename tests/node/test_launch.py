"""Launch files: arguments, substitution, includes, remappings, and start-up errors that
name the file, the node and the parameter (in Python and through the CLI: exit 2, one line)."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from drivingseg.errors import ConfigError
from drivingseg.node.launch import (
    LAUNCH_DIR,
    build_graph,
    find_launch_file,
    load_launch,
    parse_cli_arguments,
)
from drivingseg.node.processing import SyncNode


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def one_node(tmp_path: Path, node: str) -> Path:
    return write(tmp_path, "bad.yaml", "nodes:\n" + textwrap.indent(textwrap.dedent(node), "  "))


def test_shipped_launch_files_load_and_build(tiny_weights: Path) -> None:
    for name in ("demo", "replay_kitti", "replay_bag", "vehicle"):
        desc = load_launch(name, {} if name == "demo" else {"input": "synthetic"})
        graph = build_graph(desc)
        types = {n.type_name for n in graph.nodes}
        assert {"camera_source", "lidar_source", "sync", "fusion", "segmentation",
                "latency_tracker", "mcap_recorder"} <= types, name
    assert find_launch_file("demo") == LAUNCH_DIR / "demo.yaml"


def test_arguments_keep_their_type_and_paste_into_text() -> None:
    desc = load_launch("demo", parse_cli_arguments(["seed:=7", "frames:=5", "rate:=0.5",
                                                    "out_dir:=/tmp/x y"]))
    camera = next(n for n in desc.nodes if n.name == "camera")
    assert camera.parameters["input"] == "synthetic:7"
    assert camera.parameters["max_frames"] == 5
    assert camera.parameters["rate"] == 0.5
    recorder = next(n for n in desc.nodes if n.name == "recorder")
    assert recorder.parameters["path"] == "/tmp/x y/masks.mcap"
    assert desc.overflow == "block"
    assert parse_cli_arguments(["loop:=true", "name:=synthetic:3"]) == {
        "loop": True, "name": "synthetic:3"}


def test_enabled_false_leaves_a_node_out() -> None:
    desc = load_launch("demo", {"video": False, "record": False})
    names = {n.name for n in desc.nodes}
    assert "video" not in names and "recorder" not in names and "mask_pngs" in names


def test_include_and_remappings(tmp_path: Path) -> None:
    write(tmp_path, "inner.yaml", """
        arguments:
          tol: {default: 10.0}
        nodes:
          - type: sync
            name: pairing
            parameters: {tolerance_ms: $(arg tol)}
            remappings: {/camera/image: /cam/front}
    """)
    outer = write(tmp_path, "outer.yaml", """
        arguments:
          t: {default: 25}
        include:
          - file: inner.yaml
            arguments: {tol: $(arg t)}
    """)
    graph = build_graph(load_launch(outer, {"t": 40}))
    node = graph.nodes[0]
    assert isinstance(node, SyncNode)
    assert node.p["tolerance_ms"] == 40.0
    assert node.camera_sub.topic.name == "/cam/front"
    assert set(graph.topics) == {"/cam/front", "/lidar/points", "/synced"}


def test_unknown_node_type(tmp_path: Path) -> None:
    bad = one_node(tmp_path, "- {type: bogus, name: thing}")
    with pytest.raises(ConfigError, match=r"bad\.yaml: node 'thing' \(bogus\): parameter 'type': "
                       r"unknown node type 'bogus'; known: camera_source"):
        build_graph(load_launch(bad))


def test_unknown_parameter(tmp_path: Path) -> None:
    bad = one_node(tmp_path, "- {type: sync, name: pair, parameters: {tolerance: 5}}")
    with pytest.raises(ConfigError, match=r"bad\.yaml: node 'pair' \(sync\): parameter "
                       r"'tolerance': unknown parameter; valid: .*tolerance_ms"):
        build_graph(load_launch(bad))


@pytest.mark.parametrize(("value", "expected"), [
    ("fast", r"parameter 'tolerance_ms': expected a number, got 'fast' \(str\)"),
    ("true", r"parameter 'tolerance_ms': expected a number, got True \(bool\)"),
    ("-1", r"parameter 'tolerance_ms': -1\.0 is below the minimum 0 ms"),
])
def test_mistyped_or_out_of_range_parameter(tmp_path: Path, value: str, expected: str) -> None:
    bad = one_node(tmp_path, f"- {{type: sync, name: pair, parameters: {{tolerance_ms: {value}}}}}")
    with pytest.raises(ConfigError, match=r"bad\.yaml: node 'pair' \(sync\): " + expected):
        build_graph(load_launch(bad))


def test_missing_input_path_names_the_included_file_node_and_parameter(tmp_path: Path) -> None:
    graph = build_graph(load_launch("replay_kitti", {"input": str(tmp_path / "nowhere")}))
    with pytest.raises(ConfigError, match=r"replay_kitti\.yaml: node 'camera' \(camera_source, "
                       r"in pipeline\.yaml\): parameter 'input': .*nowhere: no such file"):
        graph.setup()


def test_missing_weights_file_names_the_parameter(tmp_path: Path) -> None:
    graph = build_graph(load_launch("demo", {"weights": str(tmp_path / "none")}))
    with pytest.raises(ConfigError, match=r"node 'segmentation' .*parameter 'weights'"):
        graph.setup()


def test_argument_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"replay_kitti\.yaml: argument 'input' is required"):
        load_launch("replay_kitti")
    with pytest.raises(ConfigError, match=r"demo\.yaml: unknown arguments \['bogus'\]"):
        load_launch("demo", {"bogus": 1})
    bad = one_node(tmp_path, "- {type: sync, name: s, parameters: {tolerance_ms: $(arg x)}}")
    with pytest.raises(ConfigError, match=r"node 's': \$\(arg x\) is not a declared argument"):
        load_launch(bad)
    with pytest.raises(ConfigError, match="launch arguments are name:=value"):
        parse_cli_arguments(["rate=2"])


def test_topic_type_mismatch_is_a_config_error(tmp_path: Path) -> None:
    bad = one_node(tmp_path, """
        - {type: sync, name: s}
        - {type: fusion, name: f, remappings: {/synced: /camera/image}}
    """)
    with pytest.raises(ConfigError, match=r"node 'f' \(fusion\): parameter 'remappings': topic "
                       r"'/camera/image' carries CameraImage"):
        build_graph(load_launch(bad))


@pytest.mark.parametrize(("node", "needle"), [
    ("- {type: bogus, name: thing}", "node 'thing' (bogus): parameter 'type'"),
    ("- {type: sync, name: pair, parameters: {tolerance: 5}}",
     "node 'pair' (sync): parameter 'tolerance'"),
    ("- {type: sync, name: pair, parameters: {tolerance_ms: fast}}",
     "node 'pair' (sync): parameter 'tolerance_ms'"),
    ("- {type: camera_source, name: cam, parameters: {input: /no/such/drive}}",
     "node 'cam' (camera_source): parameter 'input'"),
])
def test_cli_exit_2_with_one_line(
    tmp_path: Path, node: str, needle: str, cli: Callable[[Sequence[str]], int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    bad = one_node(tmp_path, node)
    assert cli(["launch", str(bad)]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line]
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"drivingseg launch: error: {bad}: {needle}")


def test_missing_shipped_weights_say_how_to_train(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import drivingseg.model.checkpoint as checkpoint

    monkeypatch.setattr(checkpoint, "default_weights", lambda: tmp_path / "unet_rgb.safetensors")
    graph = build_graph(load_launch("demo"))
    with pytest.raises(ConfigError, match=r"demo\.yaml: node 'segmentation' \(segmentation, in "
                       r"pipeline\.yaml\): parameter 'weights': the shipped weights are missing "
                       r".*reinstall drivingseg, train them \(docs/MODEL\.md\) "
                       r"or set weights:=PATH"):
        graph.setup()
