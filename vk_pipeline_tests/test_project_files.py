"""The project's config files: docker-compose.yml against the Compose spec, dagster.yaml and
workspace.yaml against what Dagster loads."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from dagster._core.instance.config import dagster_instance_config

ROOT = Path(__file__).resolve().parent.parent


def compose_schema() -> dict:
    for parent in ROOT.parents:
        path = parent / "shared" / "compose-spec" / "compose-spec.json"
        if path.exists():
            return json.loads(path.read_text())
    pytest.skip("shared/compose-spec not found beside the repository")


def test_docker_compose_follows_the_compose_spec():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    jsonschema.validate(compose, compose_schema())
    assert "postgres" in compose["services"]


def test_compose_spec_check_catches_a_broken_file():
    broken = {"services": {"postgres": {"image": "postgres:16", "ports": "5432"}}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, compose_schema())


def test_dagster_yaml_is_a_valid_instance_config(tmp_path: Path):
    (tmp_path / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    config, _ = dagster_instance_config(str(tmp_path))
    assert config["concurrency"]["pools"]["default_limit"] == 1


def test_workspace_loads_the_definitions_module():
    workspace = yaml.safe_load((ROOT / "workspace.yaml").read_text())
    [entry] = workspace["load_from"]
    assert entry["python_module"]["module_name"] == "vk_pipeline.definitions"
