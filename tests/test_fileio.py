"""YAML reading: invalid YAML is refused in one line naming the place, through the API
(not only the CLI), for every file kind that reads YAML."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivingseg.errors import ConfigError, ModelError
from drivingseg.fileio import read_yaml_mapping
from drivingseg.model.train_config import load_train_config


def test_invalid_yaml_is_one_line_with_line_and_column(tmp_path: Path) -> None:
    """PyYAML's own message spans lines (the source quoted under a caret) and names
    '<unicode string>' instead of the file."""
    path = tmp_path / "rig.yaml"
    path.write_text("name: x\n  width: [1, 2\n")
    with pytest.raises(ConfigError) as info:
        read_yaml_mapping(path, error=ConfigError, what="rig file")
    message = str(info.value)
    assert "\n" not in message and "<unicode string>" not in message
    assert message.startswith(f"{path}: rig file is not valid YAML: line 2, column 8: ")


def test_an_invalid_set_value_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "train.yaml"
    config.write_text("model: {depth: 2}\n")
    with pytest.raises(ModelError, match=r"--set 'train.lr=\[1, 2': value is not valid YAML: "
                                         r"line 1, column \d+: [^\n]*$") as info:
        load_train_config(config, ["train.lr=[1, 2"])
    assert "\n" not in str(info.value)
