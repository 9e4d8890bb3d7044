"""One parser for the ``device`` of every command and node: ``auto``, ``cpu``, ``cuda`` or
``cuda:N``, checked before any work so a missing GPU is one clear line, not a traceback."""

from __future__ import annotations

import re

import torch

from drivingseg.errors import ModelError

__all__ = ["check_device_name", "cuda_index", "torch_device"]

_NAME = re.compile(r"auto|cpu|cuda(:[0-9]+)?")


def check_device_name(name: str, what: str = "device") -> None:
    """:class:`ModelError` unless ``name`` is spelled ``auto``, ``cpu``, ``cuda`` or ``cuda:N``,
    whatever this machine has (for a backend that does not run on it, e.g. onnxruntime)."""
    if not _NAME.fullmatch(name):
        raise ModelError(f"{what} {name!r} is not one of auto, cpu, cuda, cuda:N")


def cuda_index(name: str) -> int | None:
    """The GPU index ``name`` gives (``cuda:N``: N), for a backend that picks its GPU by number
    (onnxruntime's ``device_id``); None for ``auto``, ``cpu`` and ``cuda`` (that backend's own
    default GPU). :class:`ModelError` when ``name`` is misspelled."""
    check_device_name(name)
    prefix, _, index = name.partition(":")
    return int(index) if prefix == "cuda" and index else None


def torch_device(name: str | torch.device, what: str = "device") -> torch.device:
    """``name`` as a :class:`torch.device` (``auto``: CUDA when present, else the CPU);
    :class:`ModelError` naming ``what`` and the value when it is not a CPU or an available
    CUDA device."""
    if isinstance(name, torch.device):
        device = name
    elif name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            device = torch.device(name)
        except (RuntimeError, ValueError, TypeError) as exc:
            raise ModelError(f"{what} {name!r} is not one of auto, cpu, cuda, cuda:N") from exc
    if device.type not in ("cpu", "cuda", "meta"):  # meta: the tests' stand-in GPU
        raise ModelError(f"{what} {str(name)!r} is not one of auto, cpu, cuda, cuda:N")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ModelError(f"{what} {str(name)!r} asked for but CUDA is not available; "
                             "use 'cpu' or 'auto'")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ModelError(f"{what} {str(name)!r}: this machine has {count} CUDA "
                             f"device(s), cuda:0 to cuda:{count - 1}")
    return device
