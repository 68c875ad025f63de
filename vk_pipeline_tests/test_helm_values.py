"""deploy/helm/values.yaml, the values for Dagster's Helm chart, kept in step with the rest of the
deployment: the same instance conventions as dagster.yaml, the image's code server, the drop
folder where compose has it, secrets only by reference. (Neither rendered nor checked against the
chart's own values schema here: see the README's Kubernetes section for why.)"""

from __future__ import annotations

import json
import re
from pathlib import Path

import dagster as dg
import yaml

from vk_pipeline import dev
from vk_pipeline_tests.deployfiles import dockerfile_instruction

ROOT = Path(__file__).resolve().parent.parent
VALUES = ROOT / "deploy" / "helm" / "values.yaml"
SECRET_NAMES = re.compile(r"TOKEN|PASSWORD|SECRET|DATABASE_URL|POSTGRES_URL", re.I)


def values() -> dict:
    return yaml.safe_load(VALUES.read_text())


def instance() -> dict:
    return yaml.safe_load((ROOT / "dagster.yaml").read_text())


def deployment() -> dict:
    [d] = values()["dagster-user-deployments"]["deployments"]
    return d


def test_the_pinned_chart_is_the_dagster_release_the_project_runs():
    [pinned] = set(re.findall(r"--version (\S+)", VALUES.read_text()))
    assert re.search(rf"chart version {re.escape(pinned)}\b", VALUES.read_text())
    # Dagster's chart and Python package versions correspond 1:1.
    assert pinned.split(".")[:2] == dg.__version__.split(".")[:2], (pinned, dg.__version__)


def test_the_instance_runs_by_the_same_conventions_as_dagster_yaml():
    v, inst = values(), instance()
    daemon = v["dagsterDaemon"]
    queued = daemon["runCoordinator"]["config"]["queuedRunCoordinator"]
    runs = inst["concurrency"]["runs"]
    assert daemon["runCoordinator"]["type"] == inst["run_coordinator"]["class"]
    assert queued["maxConcurrentRuns"] == runs["max_concurrent_runs"]
    assert queued["tagConcurrencyLimits"] == runs["tag_concurrency_limits"]
    dequeue = inst["run_coordinator"]["config"]["dequeue_interval_seconds"]
    assert queued["dequeueIntervalSeconds"] == dequeue
    assert v["additionalInstanceConfig"]["concurrency"]["pools"] == inst["concurrency"]["pools"]
    assert v["additionalInstanceConfig"]["freshness"] == inst["freshness"]
    assert daemon["runRetries"] == {
        "enabled": inst["run_retries"]["enabled"],
        "maxRetries": inst["run_retries"]["max_retries"],
    }
    monitoring = inst["run_monitoring"]
    for camel, snake in (
        ("enabled", "enabled"),
        ("startTimeoutSeconds", "start_timeout_seconds"),
        ("cancelTimeoutSeconds", "cancel_timeout_seconds"),
        ("maxResumeRunAttempts", "max_resume_run_attempts"),
        ("pollIntervalSeconds", "poll_interval_seconds"),
        ("freeSlotsAfterRunEndSeconds", "free_slots_after_run_end_seconds"),
    ):
        assert daemon["runMonitoring"][camel] == monitoring[snake], camel
    assert v["telemetry"] == inst["telemetry"]
    # Keys the chart renders itself must not come again through additionalInstanceConfig.
    rendered = {"run_coordinator", "run_monitoring", "run_retries", "run_launcher", "telemetry"}
    assert not rendered & set(v["additionalInstanceConfig"])


def test_the_code_location_runs_the_images_code_server_and_runs_are_kubernetes_jobs():
    d = deployment()
    [cmd] = dockerfile_instruction("final", "CMD")
    image_cmd = json.loads(cmd)
    assert image_cmd[:3] == ["dagster", "code-server", "start"]
    # The chart runs `dagster code-server start -h 0.0.0.0 -p PORT <codeServerArgs>`.
    assert d["codeServerArgs"] == image_cmd[3:5] == ["-m", dev.CODE_MODULE]
    assert d["includeConfigInLaunchedRuns"]["enabled"] is True
    assert values()["runLauncher"]["type"] == "K8sRunLauncher"
    # The image carries the launcher's library for the run workers.
    [install] = [r for r in dockerfile_instruction("build", "RUN") if "uv pip install" in r]
    assert re.search(r"\.\[[^]]*\bk8s\b", install), install


def test_the_drop_folder_is_a_volume_where_the_code_reads_it():
    d = deployment()
    env = {e["name"]: e.get("value") for e in d["env"]}
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    drop_dir = compose["services"]["code"]["environment"]["VK_PIPELINE_DROP_DIR"]
    assert env["VK_PIPELINE_DROP_DIR"] == drop_dir
    [mount] = [m for m in d["volumeMounts"] if m["mountPath"] == drop_dir]
    assert any(v["name"] == mount["name"] for v in d["volumes"])


def test_secrets_come_from_kubernetes_secrets_only():
    v, d = values(), deployment()
    pg = v["postgresql"]
    assert "postgresqlPassword" not in pg and v["generatePostgresqlPasswordSecret"] is False
    assert v["global"]["postgresqlSecretName"]
    # SQLAlchemy 2.1 needs the psycopg2 scheme for dagster-postgres (see dagster.yaml).
    assert pg["postgresqlScheme"] == "postgresql+psycopg2"
    assert [s["name"] for s in d["envSecrets"]] == ["vk-pipeline-env"]
    assert not [e["name"] for e in d["env"] if SECRET_NAMES.search(e["name"])]
    # The secret's keys, as the README tells to create it, are what the code reads.
    created = set(re.findall(r"--from-literal=([A-Z_]+)=", VALUES.read_text()))
    assert created == {"DATABASE_URL", "VK_ACCESS_TOKENS"}
    assert "VK_ACCESS_TOKENS" in (ROOT / "vk_pipeline" / "resources.py").read_text()
