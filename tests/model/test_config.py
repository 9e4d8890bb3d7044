"""The frozen model configs keep what their types say."""

from __future__ import annotations

import numpy as np
import pytest

from drivingseg.errors import ModelError
from drivingseg.model.config import InputSpec


def test_input_spec_stores_mean_and_std_as_tuples() -> None:
    """torchvision writes mean and std as lists: the frozen spec kept the list, so it could
    be changed under a Segmenter and was unhashable."""
    mean = [0.485, 0.456, 0.406]
    spec = InputSpec(mean=mean, std=np.array([0.229, 0.224, 0.225]))  # type: ignore[arg-type]
    mean[0] = 9.0
    assert spec.mean == (0.485, 0.456, 0.406)
    assert all(type(v) is float for v in (*spec.mean, *spec.std))
    assert hash(spec) == hash(InputSpec(mean=(0.485, 0.456, 0.406),
                                        std=(0.229, 0.224, 0.225)))


def test_input_spec_takes_numpy_numbers() -> None:
    """np.float32 means and an np.int64 width (a computed size) were refused as not numbers."""
    spec = InputSpec(width=np.int64(320), height=240,  # type: ignore[arg-type]
                     mean=tuple(np.full(3, 0.5, np.float32)))
    assert type(spec.width) is int and spec.mean == (0.5, 0.5, 0.5)
    for bad in ({"width": True}, {"width": 15}, {"std": (0.2, 0.2, float("nan"))}):
        with pytest.raises(ModelError):
            InputSpec(**bad)  # type: ignore[arg-type]
