"""The frozen model configs keep what their types say."""

from __future__ import annotations

import numpy as np
import pytest

from drivingseg.errors import ModelError
from drivingseg.model.config import InputSpec, ModelConfig


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


@pytest.mark.parametrize(("data", "match"), [
    ({"depth": 9}, r"^c\.yaml: model\.depth must be an integer in \[1, 6\], got 9$"),
    ({"in_channels": 4}, r"^c\.yaml: model\.in_channels must be 3 \(RGB\) or 7 .*got 4$"),
    ({"norm": "layer"}, r"^c\.yaml: unknown model\.norm 'layer'; valid choices"),
    ({"norm": "group", "base_channels": 6},
     r"model\.norm 'group' needs model\.base_channels divisible by 4, got 6"),
    ({"widht": 3}, r"^c\.yaml: model: unknown model config keys \['widht'\]"),
])
def test_config_file_errors_name_the_key_with_its_section(data: dict[str, object],
                                                         match: str) -> None:
    """A training YAML or checkpoint JSON spells the key ``model.depth``; its error said
    'depth must be ...', which a user had to map back to the file's section."""
    with pytest.raises(ModelError, match=match):
        ModelConfig.from_dict(data, "c.yaml")
    with pytest.raises(ModelError, match=r"model_config\.depth must"):
        ModelConfig.from_dict({"depth": 0}, "m.onnx", section="model_config")
    with pytest.raises(ModelError, match=r"^depth must be an integer"):
        ModelConfig(depth=9)  # built in Python: the argument's own name
