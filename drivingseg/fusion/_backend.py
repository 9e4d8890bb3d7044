"""A tiny numpy/torch dispatch so one projection code path serves both array types.

Arithmetic, comparisons, boolean masks and ``@`` already behave alike on numpy arrays
and torch tensors; only creation, dtype casts, reductions with an axis and scatter
operations differ. :func:`backend_of` picks the right set for an input array. torch is
imported only when a tensor is passed, so numpy-only callers never pay for it.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

import numpy as np

__all__ = ["Array", "Backend", "NumpyBackend", "TorchBackend", "backend_of", "is_torch"]

Array = Any
"""A numpy array or a torch tensor (the backends keep them apart at run time)."""


_SCRATCH = threading.local()


def _scratch(key: tuple[Any, ...], make: Any) -> Any:
    """A per-thread buffer reused across calls (fresh large buffers cost page faults)."""
    cache = getattr(_SCRATCH, "buffers", None)
    if cache is None:
        cache = _SCRATCH.buffers = {}
    buf = cache.get(key)
    if buf is None:
        if len(cache) >= 8:
            cache.clear()
        buf = cache[key] = make()
    return buf


def is_torch(x: object) -> bool:
    """True when ``x`` is a torch tensor (without importing torch)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


class Backend:
    """Operations whose spelling differs between numpy and torch."""

    name = "abstract"

    def __init__(self, like: Array) -> None:
        self.like = like

    def asarray(self, value: Any, dtype: str) -> Array:
        raise NotImplementedError

    def to_numpy(self, x: Array) -> np.ndarray:
        raise NotImplementedError

    def all_rows(self, mask: Array) -> Array:
        raise NotImplementedError

    def isfinite(self, x: Array) -> Array:
        raise NotImplementedError

    def floor_int(self, x: Array) -> Array:
        raise NotImplementedError

    def nonzero(self, mask: Array) -> Array:
        raise NotImplementedError

    def full(self, n: int, value: float, dtype: str) -> Array:
        raise NotImplementedError

    def empty(self, n: int, dtype: str) -> Array:
        raise NotImplementedError

    def scratch(self, n: int, dtype: str, slot: int) -> Array:
        """Uninitialised per-thread buffer number ``slot``, reused by later calls."""
        raise NotImplementedError

    def where(self, mask: Array, a: Array, b: float) -> Array:
        raise NotImplementedError

    def arctan(self, x: Array) -> Array:
        raise NotImplementedError

    def minimum_at(self, target: Array, index: Array, values: Array) -> None:
        raise NotImplementedError

    def count(self, mask: Array) -> int:
        raise NotImplementedError


class NumpyBackend(Backend):
    name = "numpy"

    def asarray(self, value: Any, dtype: str) -> Array:
        return np.asarray(value, dtype=np.dtype(dtype))

    def to_numpy(self, x: Array) -> np.ndarray:
        return np.asarray(x)

    def all_rows(self, mask: Array) -> Array:
        return mask.all(axis=1)

    def isfinite(self, x: Array) -> Array:
        return np.isfinite(x)

    def floor_int(self, x: Array) -> Array:
        return np.floor(x).astype(np.int64)

    def nonzero(self, mask: Array) -> Array:
        return np.flatnonzero(mask)

    def full(self, n: int, value: float, dtype: str) -> Array:
        return np.full(n, value, dtype=np.dtype(dtype))

    def empty(self, n: int, dtype: str) -> Array:
        return np.empty(n, dtype=np.dtype(dtype))

    def scratch(self, n: int, dtype: str, slot: int) -> Array:
        return _scratch(("numpy", n, dtype, slot), lambda: self.empty(n, dtype))

    def where(self, mask: Array, a: Array, b: float) -> Array:
        return np.where(mask, a, b)

    def arctan(self, x: Array) -> Array:
        return np.arctan(x)

    def minimum_at(self, target: Array, index: Array, values: Array) -> None:
        np.minimum.at(target, index, values)

    def count(self, mask: Array) -> int:
        return int(np.count_nonzero(mask))


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, like: Array) -> None:
        super().__init__(like)
        import torch

        self.torch = torch
        self.device = like.device

    def asarray(self, value: Any, dtype: str) -> Array:
        return self.torch.as_tensor(value, dtype=getattr(self.torch, dtype), device=self.device)

    def to_numpy(self, x: Array) -> np.ndarray:
        return np.asarray(x.detach().cpu().numpy())

    def all_rows(self, mask: Array) -> Array:
        return mask.all(dim=1)

    def isfinite(self, x: Array) -> Array:
        return self.torch.isfinite(x)

    def floor_int(self, x: Array) -> Array:
        return self.torch.floor(x).to(self.torch.int64)

    def nonzero(self, mask: Array) -> Array:
        return self.torch.nonzero(mask).reshape(-1)

    def full(self, n: int, value: float, dtype: str) -> Array:
        return self.torch.full((n,), value, dtype=getattr(self.torch, dtype), device=self.device)

    def empty(self, n: int, dtype: str) -> Array:
        return self.torch.empty((n,), dtype=getattr(self.torch, dtype), device=self.device)

    def scratch(self, n: int, dtype: str, slot: int) -> Array:
        key = ("torch", str(self.device), n, dtype, slot)
        return _scratch(key, lambda: self.empty(n, dtype))

    def where(self, mask: Array, a: Array, b: float) -> Array:
        return self.torch.where(mask, a, self.torch.as_tensor(b, dtype=a.dtype, device=a.device))

    def arctan(self, x: Array) -> Array:
        return self.torch.atan(x)

    def minimum_at(self, target: Array, index: Array, values: Array) -> None:
        target.scatter_reduce_(0, index, values, reduce="amin", include_self=True)

    def count(self, mask: Array) -> int:
        return int(mask.sum().item())


def backend_of(x: Array) -> Backend:
    """The backend for ``x``: torch for tensors (any device), numpy otherwise."""
    return TorchBackend(x) if is_torch(x) else NumpyBackend(x)
