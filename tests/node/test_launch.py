"""Launch files: arguments, substitution, includes, remappings, and start-up errors that
name the file, the node and the parameter (in Python and through the CLI: exit 2, one line)."""

from __future__ import annotations

import re
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
from drivingseg.node.params import Scalar
from drivingseg.node.processing import SegmentationNode
from drivingseg.node.runtime import Node
from drivingseg.node.sync_node import SyncNode


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def one_node(tmp_path: Path, node: str) -> Path:
    return write(tmp_path, "bad.yaml", "nodes:\n" + textwrap.indent(textwrap.dedent(node), "  "))


def resolved(file: str | Path, *cli_arguments: str) -> dict[str, Node]:
    """The nodes of ``file`` built with ``name:=value`` arguments, by name."""
    graph = build_graph(load_launch(file, parse_cli_arguments(cli_arguments)))
    return {n.name: n for n in graph.nodes}


def test_shipped_launch_files_load_and_build(tiny_weights: Path) -> None:
    for name in ("demo", "replay_kitti", "replay_bag", "vehicle"):
        desc = load_launch(name, {} if name == "demo" else {"input": "synthetic"})
        graph = build_graph(desc)
        types = {n.type_name for n in graph.nodes}
        assert {"camera_source", "lidar_source", "sync", "fusion", "segmentation",
                "latency_tracker", "mcap_recorder"} <= types, name
    assert find_launch_file("demo") == LAUNCH_DIR / "demo.yaml"


def test_vehicle_starts_with_the_onnxruntime_backend_it_documents(
    tiny_weights: Path, tmp_path: Path
) -> None:
    """vehicle.yaml pins host memory (pin_memory, a torch option, true by default); the
    segmentation node used to refuse it with backend:=onnxruntime, so the documented
    backend could not start. It is ignored there, as channels_last is."""
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed: the node "
                        "cannot start that backend")
    from drivingseg.model.backends import OnnxSegmenter

    nodes = resolved("vehicle", "input:=synthetic", "backend:=onnxruntime", "live:=false",
                     f"weights:={tiny_weights}", f"out_dir:={tmp_path}")
    segmentation = nodes["segmentation"]
    assert isinstance(segmentation, SegmentationNode) and segmentation.p["pin_memory"] is True
    segmentation.setup()
    assert isinstance(segmentation.segmenter, OnnxSegmenter)


@pytest.mark.parametrize("file", ["replay_kitti", "replay_bag", "vehicle", "demo"])
def test_video_frame_rate_reaches_the_video_writer(file: str) -> None:
    """outputs.yaml's video_fps used to be neither declared nor passed on by the top-level
    files, so a replay's overlay video was always 10 fps."""
    nodes = resolved(file, "input:=synthetic", "video:=true", "video_fps:=30")
    assert nodes["video"].p["fps"] == 30.0
    # By default the video follows the camera's rate (0): a 20 Hz bag in a fixed 10 fps
    # video played at half speed.
    assert resolved(file, "input:=synthetic", "video:=true")["video"].p["fps"] == 0.0


def test_sources_get_no_queue_depth_and_only_the_camera_a_frame_limit(tmp_path: Path) -> None:
    """Sources subscribe to nothing, so they do not take qos_depth; max_frames counts
    camera frames, the lidar source follows the camera's last frame (its own max_frames,
    which used to get the camera's, is left at no limit)."""
    for file in ("pipeline", "replay_kitti", "replay_bag", "vehicle", "demo"):
        desc = load_launch(file, {"input": "synthetic", "max_frames": 6}
                           if file == "pipeline" else {"input": "synthetic"})
        for spec in desc.nodes:
            if spec.type in ("camera_source", "lidar_source"):
                assert "qos_depth" not in spec.parameters, (file, spec.name)
                assert ("max_frames" in spec.parameters) == (spec.type == "camera_source"), (
                    file, spec.name)
    nodes = resolved("pipeline", "input:=synthetic", "max_frames:=6", "qos_depth:=3")
    assert nodes["camera"].p["max_frames"] == 6 and nodes["lidar"].p["max_frames"] == 0
    assert nodes["sync"].p["qos_depth"] == 3
    with pytest.raises(ConfigError, match=r"node 'lidar' \(lidar_source\): parameter "
                       r"'qos_depth': unknown parameter"):
        build_graph(load_launch(one_node(tmp_path, """\
            - {type: lidar_source, name: lidar, parameters: {input: synthetic, qos_depth: 2}}
            """)))


def test_vehicle_queue_depths_are_launch_arguments() -> None:
    def depths(args: dict[str, str]) -> dict[str, object]:
        desc = load_launch("vehicle", {"input": "synthetic", **args})
        return {n.type: getattr(n.parameters.get("qos_depth"), "value", None)
                for n in desc.nodes}

    plain = depths({})
    assert plain["segmentation"] == 1 and plain["mcap_recorder"] == 2
    deeper = depths(parse_cli_arguments(["qos_depth:=3", "output_qos_depth:=5"]))
    assert deeper["segmentation"] == 3 and deeper["mcap_recorder"] == 5


def test_arguments_keep_their_type_and_paste_into_text() -> None:
    desc = load_launch("demo", parse_cli_arguments(["seed:=7", "frames:=5", "rate:=0.5",
                                                    "out_dir:=/tmp/x y"]))
    camera = next(n for n in desc.nodes if n.name == "camera")
    assert camera.parameters["input"] == "synthetic:7"
    assert camera.parameters["max_frames"].value == 5
    assert camera.parameters["rate"].value == 0.5
    recorder = next(n for n in desc.nodes if n.name == "recorder")
    assert recorder.parameters["path"] == "/tmp/x y/masks.mcap"
    assert desc.overflow == "block"
    nodes = {n.name: n for n in build_graph(desc).nodes}
    assert nodes["camera"].p["max_frames"] == 5 and nodes["camera"].p["rate"] == 0.5
    parsed = parse_cli_arguments(["loop:=true", "name:=synthetic:3", "label:='on'"])
    assert parsed == {"loop": "true", "name": "synthetic:3", "label": "on"}
    assert isinstance(parsed["loop"], Scalar) and parsed["loop"].value is True
    assert type(parsed["name"]) is str and type(parsed["label"]) is str


@pytest.mark.parametrize(("argument", "node", "param", "expected"), [
    ("fp16:=off", "segmentation", "fp16", "off"),
    ("fp16:=on", "segmentation", "fp16", "on"),
    ("compile:=off", "segmentation", "compile", "off"),
    ("lidar_channels:=off", "fusion", "channels", "off"),
    ("lidar_channels:=on", "fusion", "channels", "on"),
    ("out_dir:=2024", "latency", "out_dir", "2024"),
    ("out_dir:=0755", "latency", "out_dir", "0755"),
    ("out_dir:=1:30", "latency", "out_dir", "1:30"),
    ("out_dir:=2024-01-01", "latency", "out_dir", "2024-01-01"),
    ("weights:=1.50", "segmentation", "weights", "1.50"),
])
def test_str_parameters_get_the_text_typed_on_the_command_line(
    argument: str, node: str, param: str, expected: str
) -> None:
    value = resolved("pipeline", "input:=synthetic", argument)[node].p[param]
    assert value == expected and type(value) is str


@pytest.mark.parametrize(("text", "expected"), [
    ("true", True), ("false", False), ("True", True), ("FALSE", False),
    ("on", True), ("off", False), ("yes", True), ("no", False),
])
def test_bool_parameters_take_true_false_and_on_off(text: str, expected: bool) -> None:
    nodes = resolved("pipeline", "input:=synthetic", f"loop:={text}", f"proposals:={text}")
    assert nodes["camera"].p["loop"] is expected
    assert ("proposals" in nodes) is expected


@pytest.mark.parametrize("text", ["'true'", "1", "maybe"])
def test_bool_parameters_reject_text_and_numbers(text: str) -> None:
    with pytest.raises(ConfigError, match=r"node 'camera' \(camera_source\): parameter 'loop': "
                       r"expected a boolean, got "):
        resolved("pipeline", "input:=synthetic", f"loop:={text}")


def test_unquoted_values_in_launch_files_keep_their_text_for_str_parameters(
    tmp_path: Path,
) -> None:
    file = write(tmp_path, "graph.yaml", """
        arguments:
          precision: off
          dir: {default: 2024}
          tracker: no
        nodes:
          - type: segmentation
            parameters: {fp16: $(arg precision), compile: off, trace: off, num_threads: 2}
          - {type: fusion, parameters: {channels: on, densify: yes}}
          - type: latency_tracker
            parameters: {out_dir: $(arg dir), budget_ms: 50}
          - {type: sync, enabled: $(arg tracker)}
          - {type: mask_writer, parameters: {dir: runs/$(arg precision)-$(arg dir)}}
    """)
    nodes = resolved(file)
    assert nodes["segmentation"].p["fp16"] == "off" and nodes["segmentation"].p["compile"] == "off"
    assert nodes["segmentation"].p["trace"] is False and nodes["segmentation"].p["num_threads"] == 2
    assert nodes["fusion"].p["channels"] == "on" and nodes["fusion"].p["densify"] is True
    assert nodes["latency_tracker"].p["out_dir"] == "2024"
    assert nodes["latency_tracker"].p["budget_ms"] == 50.0
    assert nodes["mask_writer"].p["dir"] == "runs/off-2024"
    assert "sync" not in nodes
    assert resolved(file, "dir:=2025", "precision:=on")["latency_tracker"].p["out_dir"] == "2025"


def test_cli_launch_with_str_choices_typed_as_on_off(
    tiny_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    cli: Callable[[Sequence[str]], int],
) -> None:
    monkeypatch.chdir(tmp_path)
    code = cli(["launch", "pipeline", "input:=synthetic", f"weights:={tiny_weights}",
                "fp16:=off", "compile:=off", "lidar_channels:=on", "out_dir:=2024",
                "rate:=0", "max_frames:=2", "status:=off", "proposals:=no"])
    assert code == 0
    assert (tmp_path / "2024" / "latency.json").stat().st_size > 0


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


def test_node_names_take_substitutions(tmp_path: Path) -> None:
    """A name with ``$(arg ...)`` used to keep the text as written ('pair_$(arg side)')."""
    launch = write(tmp_path, "named.yaml", """
        arguments:
          side: {default: left}
        nodes:
          - {type: sync, name: pair_$(arg side)}
          - {type: fusion, name: $(arg side)}
    """)
    assert [n.name for n in load_launch(launch, {"side": "right"}).nodes] == ["pair_right",
                                                                                "right"]
    assert [n.name for n in build_graph(load_launch(launch)).nodes] == ["pair_left", "left"]


def test_argument_errors_of_an_include_name_the_including_file(tmp_path: Path) -> None:
    """They used to name the included file only and say 'pass need:=VALUE', which the
    command line cannot do (the including file refuses the argument)."""
    write(tmp_path, "inner.yaml", """
        arguments:
          need: {description: required}
          tol: {default: 10.0}
    """)
    outer = write(tmp_path, "outer.yaml", """
        include:
          - file: inner.yaml
            arguments: {tol: 3}
    """)
    with pytest.raises(ConfigError, match=r"inner\.yaml: argument 'need' is required: include "
                       r"#1 of outer\.yaml does not pass it \(add it to that include's "
                       r"arguments\)$"):
        load_launch(outer)
    outer.write_text("include:\n  - {file: inner.yaml, arguments: {need: 1, bogus: 2}}\n")
    with pytest.raises(ConfigError, match=r"inner\.yaml: unknown arguments \['bogus'\] "
                       r"\(passed by include #1 of outer\.yaml\); declared: need, tol$"):
        load_launch(outer)


@pytest.mark.parametrize("file", ["replay_kitti", "replay_bag", "demo", "vehicle"])
def test_an_empty_folder_argument_does_not_put_outputs_at_the_filesystem_root(
    file: str
) -> None:
    """``out_dir:=`` (or ``replay --out ''``) made '$(arg out_dir)/masks.mcap' the path
    '/masks.mcap': run as root, the MCAP, the video and the mask PNGs were written into
    '/', while the latency tracker, for which '' means none, wrote no latency.json."""
    with pytest.raises(ConfigError, match=r"outputs\.yaml: node '\w+': "
                       r"'\$\(arg out_dir\)/[\w.]+' is '/[\w.]+', at the filesystem root, "
                       r"because \$\(arg out_dir\) is empty; give out_dir a folder$"):
        load_launch(file, {"input": "drive", "out_dir": ""})


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
    (".nan", r"parameter 'tolerance_ms': expected a finite number, got nan"),
    (".inf", r"parameter 'tolerance_ms': expected a finite number, got inf"),
    ("-.inf", r"parameter 'tolerance_ms': expected a finite number, got -inf"),
    pytest.param("1" + "0" * 400, r"parameter 'tolerance_ms': expected a finite number, "
                 r"got 10{400}$", id="int-beyond-float"),
])
def test_mistyped_or_out_of_range_parameter(tmp_path: Path, value: str, expected: str) -> None:
    bad = one_node(tmp_path, f"- {{type: sync, name: pair, parameters: {{tolerance_ms: {value}}}}}")
    with pytest.raises(ConfigError, match=r"bad\.yaml: node 'pair' \(sync\): " + expected):
        build_graph(load_launch(bad))


@pytest.mark.parametrize(("argument", "node", "shown"), [
    ("start_s:=.inf", "camera (camera_source)", "inf"),
    ("end_s:=.inf", "camera (camera_source)", "inf"),
    ("rate:=.nan", "camera (camera_source)", "nan"),
    ("tolerance_ms:=.NaN", "sync (sync)", "nan"),
    ("budget_ms:=.inf", "latency (latency_tracker)", "inf"),
    ("depth_jump_m:=-.Inf", "proposals (proposals)", "-inf"),
])
def test_non_finite_numbers_are_rejected(argument: str, node: str, shown: str) -> None:
    name, node_type = node.split()
    param = argument.partition(":=")[0]
    expected = (f"pipeline.yaml: node '{name}' {node_type}: parameter '{param}': "
                f"expected a finite number, got {shown}")
    with pytest.raises(ConfigError, match=re.escape(expected) + "$"):
        resolved("pipeline", "input:=synthetic", argument)


def test_include_with_unknown_keys(tmp_path: Path) -> None:
    write(tmp_path, "inner.yaml", "arguments: {tol: 10.0}\n")
    outer = write(tmp_path, "outer.yaml", """
        include:
          - file: inner.yaml
            argument: {tol: 25.0}
    """)
    with pytest.raises(ConfigError, match=r"outer\.yaml: include #1: unknown keys \['argument'\]; "
                       r"valid: file, arguments$"):
        load_launch(outer)
    outer.write_text("include:\n  - {files: inner.yaml, 1: x}\n")
    with pytest.raises(ConfigError, match=r"include #1: unknown keys \['1', 'files'\]; valid"):
        load_launch(outer)



@pytest.mark.parametrize("key, entry", [("include", "file: inner.yaml"),
                                        ("nodes", "type: sync\n  name: s")])
def test_include_and_nodes_must_be_lists(tmp_path: Path, key: str, entry: str) -> None:
    """One entry written as a mapping (no ``-``) was read key by key: "include #1 needs a
    'file' key" of an include that has one, "node #1: expected a mapping, got 'type'"."""
    write(tmp_path, "inner.yaml", "arguments: {}\n")
    outer = tmp_path / "outer.yaml"
    outer.write_text(f"{key}:\n  {entry}\n")
    with pytest.raises(ConfigError, match=rf"outer\.yaml: '{key}' must be a list, one '- ' "
                       rf"entry per {key.rstrip('s')}, got dict {{'"):
        load_launch(outer)
    outer.write_text(f"{key}:\n  - {entry.replace(chr(10), chr(10) + '  ')}\n")
    assert len(load_launch(outer).nodes) == (key == "nodes")

def test_missing_input_path_names_the_included_file_node_and_parameter(tmp_path: Path) -> None:
    graph = build_graph(load_launch("replay_kitti", {"input": str(tmp_path / "nowhere")}))
    with pytest.raises(ConfigError, match=r"replay_kitti\.yaml: node 'camera' \(camera_source, "
                       r"in pipeline\.yaml\): parameter 'input': .*nowhere: no such file"):
        graph.setup()


def test_missing_weights_file_names_the_parameter(tmp_path: Path) -> None:
    graph = build_graph(load_launch("demo", {"weights": str(tmp_path / "none")}))
    with pytest.raises(ConfigError, match=r"node 'segmentation' .*parameter 'weights'"):
        graph.setup()


def test_a_mistyped_argument_gets_the_declared_name_suggested() -> None:
    """``viedo:=false`` was refused with the list of all 21 arguments of demo.yaml, none
    singled out; the error now names the one the user meant (each, for several typos)."""
    with pytest.raises(ConfigError, match=r"demo\.yaml: unknown arguments \['viedo'\] "
                       r"\(did you mean 'video'\?\); declared: budget_ms, "):
        load_launch("demo", {"viedo": False})
    with pytest.raises(ConfigError, match=r"unknown arguments \['budegt_ms', 'viedo'\] "
                       r"\(did you mean 'budget_ms' for 'budegt_ms', 'video' for 'viedo'\?\)"):
        load_launch("demo", {"viedo": False, "budegt_ms": 50})
    with pytest.raises(ConfigError, match=r"unknown arguments \['zzz'\]; declared: "):
        load_launch("demo", {"zzz": 1})


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
    # A default may use the arguments declared before it, not those after it.
    order = tmp_path / "order.yaml"
    order.write_text("arguments:\n  a: {default: $(arg b)}\n  b: {default: 3}\n"
                     "nodes:\n- {type: sync, name: s, parameters: {tolerance_ms: $(arg a)}}\n")
    with pytest.raises(ConfigError, match=r"order\.yaml: argument 'a': \$\(arg b\) is declared "
                                          r"after it; a default can use only the arguments "
                                          r"declared before it \(move it up\)"):
        load_launch(order)
    assert load_launch(order, {"a": 5}).nodes[0].parameters["tolerance_ms"] == 5


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
