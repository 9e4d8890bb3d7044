"""Fixtures of the node tests: a tiny untrained checkpoint, the CLI, small graph runs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch

from drivingseg.model.checkpoint import save_checkpoint
from drivingseg.model.config import InputSpec, ModelConfig
from drivingseg.model.unet import UNet
from drivingseg.node.graph import Graph, RunResult
from drivingseg.node.latency import LatencyTracker
from drivingseg.node.launch import build_graph, load_launch

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained 2-level U-Net (64x48 input) saved with the model package's writer."""
    torch.manual_seed(0)
    config = ModelConfig(depth=2, base_channels=4)
    path = tmp_path_factory.mktemp("weights") / "tiny"
    return save_checkpoint(path, UNet(config).eval(), config, InputSpec(64, 48))


@pytest.fixture(scope="session")
def cli() -> Callable[[Sequence[str]], int]:
    """The real CLI entry point (in-process)."""
    from drivingseg.cli import main

    return main


RunLaunch = Callable[..., tuple[Graph, RunResult, LatencyTracker]]


@pytest.fixture
def run_launch() -> RunLaunch:
    """Load, build, set up and run a launch file (no signal handlers); also its tracker."""

    def run(file: str, **arguments: Any) -> tuple[Graph, RunResult, LatencyTracker]:
        graph = build_graph(load_launch(file, arguments))
        graph.setup()
        result = graph.run(handle_signals=False, timeout_s=120)
        tracker = next(n for n in graph.nodes if isinstance(n, LatencyTracker))
        return graph, result, tracker

    return run
