"""The one device parser: clear errors before any work, whatever the machine has."""

from __future__ import annotations

import pytest
import torch

from drivingseg.errors import ModelError
from drivingseg.model.checkpoint import load_checkpoint
from drivingseg.model.device import torch_device


def test_names_parse_and_auto_follows_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    assert torch_device("cpu") == torch.device("cpu")
    assert torch_device(torch.device("cpu")) == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert torch_device("auto") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert torch_device("auto") == torch.device("cuda")
    assert torch_device("cuda:1") == torch.device("cuda", 1)


def test_bad_or_missing_devices_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ModelError, match=r"^train\.device 'gpu' is not one of auto, cpu, cuda"):
        torch_device("gpu", "train.device")
    with pytest.raises(ModelError, match=r"device 'mps' is not one of"):
        torch_device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ModelError, match=r"device 'cuda:0' asked for but CUDA is not available"):
        torch_device("cuda:0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ModelError, match=r"device 'cuda:3': this machine has 1 CUDA device"):
        torch_device("cuda:3")


def test_load_checkpoint_checks_the_device_before_reading() -> None:
    """eval and report load the weights first: a typo must not become a torch traceback."""
    with pytest.raises(ModelError, match=r"device 'gpu' is not one of"):
        load_checkpoint("default", device="gpu")


def test_a_torch_device_of_another_kind_is_refused_too() -> None:
    """A torch.device passed in skipped the kind check: 'mps' became a torch traceback
    ("PyTorch is not linked with support for mps devices") when the model moved."""
    with pytest.raises(ModelError, match=r"^device 'mps' is not one of auto, cpu, cuda, cuda:N"):
        torch_device(torch.device("mps"))


def test_device_names_are_checked_without_asking_the_machine(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The spelling alone, for a backend that does not run on torch's device (onnxruntime)."""
    from drivingseg.model.device import check_device_name

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for name in ("auto", "cpu", "cuda", "cuda:0", "cuda:12"):
        check_device_name(name)
    for name in ("gpu", "cuda:", "cuda:-1", "CPU", " cpu", "cuda:1 "):
        with pytest.raises(ModelError, match=r"^node\.device .* is not one of auto, cpu, cuda"):
            check_device_name(name, "node.device")
