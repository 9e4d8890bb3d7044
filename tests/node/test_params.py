"""Param.check: unquoted YAML scalars (text for str parameters, value for the others) and
finite floats."""

from __future__ import annotations

import copy
import math
import pickle

import pytest

from drivingseg.errors import ConfigError
from drivingseg.node.params import Param, Scalar, describe_parameters, resolve_parameters

FP16 = Param("fp16", str, "auto", "half precision", choices=("auto", "on", "off"))
LOOP = Param("loop", bool, False, "replay again and again")
RATE = Param("rate", float, 1.0, "replay speed", "x", min=0.0, max=1000.0)
BUDGET = Param("budget_ms", float, 100.0, "deadline", "ms", min=0.0)


@pytest.mark.parametrize(("param", "given", "expected"), [
    (FP16, Scalar("off", False), "off"),
    (FP16, Scalar("on", True), "on"),
    (Param("out_dir", str, "", "folder"), Scalar("2024", 2024), "2024"),
    (Param("out_dir", str, "", "folder"), Scalar("0755", 493), "0755"),
    (LOOP, Scalar("off", False), False),
    (LOOP, Scalar("true", True), True),
    (RATE, Scalar("2", 2), 2.0),
])
def test_scalar_gives_str_parameters_its_text_and_others_its_value(
    param: Param, given: Scalar, expected: object
) -> None:
    value = param.check(given, "p", None)
    assert value == expected and type(value) is type(expected)


def test_scalar_errors_show_what_yaml_read() -> None:
    with pytest.raises(ConfigError, match=r"^f\.yaml: p: expected a number, got True \(bool\)$"):
        RATE.check(Scalar("yes", True), "p", "f.yaml")
    with pytest.raises(ConfigError, match=r"^p: 'no' is not one of auto, on, off$"):
        FP16.check(Scalar("no", False), "p", None)
    with pytest.raises(ConfigError, match=r"^p: expected a string, got False \(bool\)$"):
        FP16.check(False, "p", None)


def test_scalar_survives_copy_and_pickle() -> None:
    for twin in (copy.deepcopy(Scalar("off", False)),
                 pickle.loads(pickle.dumps(Scalar("off", False)))):
        assert isinstance(twin, Scalar) and twin == "off" and twin.value is False


@pytest.mark.parametrize(("param", "given", "shown"), [
    (RATE, math.nan, "nan"),
    (RATE, math.inf, "inf"),
    (BUDGET, math.inf, "inf"),
    (BUDGET, -math.inf, "-inf"),
    (BUDGET, Scalar(".inf", math.inf), "inf"),
    pytest.param(BUDGET, 10**400, "1" + "0" * 400, id="int-beyond-float"),
])
def test_non_finite_floats_are_rejected(param: Param, given: object, shown: str) -> None:
    with pytest.raises(ConfigError, match=rf"^f\.yaml: p: expected a finite number, got {shown}$"):
        param.check(given, "p", "f.yaml")


def test_resolve_parameters_names_the_node_for_a_non_finite_float() -> None:
    with pytest.raises(ConfigError, match=r"^l\.yaml: node 'cam' \(camera_source\): parameter "
                       r"'rate': expected a finite number, got nan$"):
        resolve_parameters([RATE, LOOP], {"rate": math.nan}, node="cam",
                           node_type="camera_source", path="l.yaml")
    assert resolve_parameters([BUDGET, LOOP], {"budget_ms": 1e300, "loop": Scalar("on", True)},
                              node="t", node_type="latency_tracker", path=None) == {
        "budget_ms": 1e300, "loop": True}


def test_every_node_parameter_is_documented_with_a_unit_where_it_is_a_number() -> None:
    """ROS 2 style: every parameter has a description, every number a unit (a count says
    what it counts); a parameter a node ignores is not declared (qos_depth of the latency
    tracker and the live view, whose queue depths are fixed, and of the sources, which
    subscribe to nothing)."""
    from drivingseg.node.latency import LatencyTracker
    from drivingseg.node.outputs import LiveView
    from drivingseg.node.registry import NODE_TYPES
    from drivingseg.node.sources import CameraSource, LidarSource

    for name, cls in NODE_TYPES.items():
        for p in (*cls.parameters, *cls.common_parameters):
            assert p.description, (name, p.name)
            if p.type in (int, float):
                assert p.unit, (name, p.name)
    for cls in (LatencyTracker, LiveView, CameraSource, LidarSource):
        assert "qos_depth" not in {p.name for p in (*cls.parameters, *cls.common_parameters)}


def test_list_nodes_shows_each_parameter_s_range() -> None:
    """``drivingseg launch --list-nodes`` showed type, default and unit but not the range
    checked at start, so 'qos_depth: 0' or 'camera: 5' could only be found out by failing."""
    from drivingseg.node.registry import describe_node_types

    text = describe_node_types()
    assert "  qos_depth: int (1 to 1000) = 2 [messages]  " in text
    assert "  camera: int (0 to 3) = 2 [index]  " in text
    assert "  start_s: float (>= 0) = 0.0 [s]  " in text
    assert "  fp16: str (auto|on|off) = 'auto'  " in text
    assert "  loop: bool = False  " in text


def test_bounds_are_shown_with_every_digit() -> None:
    """``:g`` showed chunk_kb's maximum 1048576 as 1.04858e+06, in ``--list-nodes`` and in
    the error: "1048577 is above the maximum 1.04858e+06 KiB" named a different limit."""
    chunk = Param("chunk_kb", int, 1024, "chunk size", "KiB", min=1, max=1024 * 1024)
    assert "  chunk_kb: int (1 to 1048576) = 1024 [KiB]  " in describe_parameters([chunk])
    with pytest.raises(ConfigError, match=r"1048577 is above the maximum 1048576 KiB$"):
        chunk.check(1048577, "node 'recorder': parameter 'chunk_kb'", None)
    assert chunk.check(1048576, "node 'recorder': parameter 'chunk_kb'", None) == 1048576
    jump = Param("depth_jump_m", float, 3.0, "split", "m", min=0.01)
    with pytest.raises(ConfigError, match=r"0\.001 is below the minimum 0\.01 m$"):
        jump.check(0.001, "node 'proposals': parameter 'depth_jump_m'", None)
