"""`ray_cluster.yaml` passes Ray's own cluster-launcher validation (what `ray up` runs first)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from tests.conftest import REPO


def _config() -> dict[str, Any]:
    return yaml.safe_load((REPO / "ray_cluster.yaml").read_text())


def test_the_cluster_config_passes_rays_validation() -> None:
    validate_config(prepare_config(_config()))


def test_it_installs_this_project_on_every_node() -> None:
    config = _config()
    assert config["file_mounts"]["~/tape"] == "."
    assert any("pip install" in c and "~/tape" in c for c in config["setup_commands"])


def test_a_misspelt_key_fails_the_same_validation() -> None:
    broken = copy.deepcopy(_config())
    broken["setup_comands"] = broken.pop("setup_commands")
    with pytest.raises(Exception, match="setup_comands"):
        validate_config(prepare_config(broken))
