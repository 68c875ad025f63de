"""The deployment files, checked without a Docker engine: docker-compose.yml against the Compose
Specification and against what the code reads, the instance config Dagster loads, and the vendored
data the tests carry (the Dockerfile: test_dockerfile.py)."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import jsonschema
import pytest
import yaml
from dagster._core.instance.config import dagster_instance_config

from vk_pipeline import dev, local
from vk_pipeline.testing.databases import create_database, drop_database
from vk_pipeline_tests.deployfiles import dockerfile_env, dockerfile_instruction

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
DAGSTER_SERVICES = ("code", "webserver", "daemon")
FAKE_PASSWORD = "s3cretPassw0rd"


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def compose_schema() -> dict:
    return json.loads((DATA / "compose-spec" / "compose-spec.json").read_text())


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}`, `${VAR:?error}` and `$$` (enough for our file)."""

    def sub(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        if env.get(name):
            return env[name]
        if op == ":?":
            raise KeyError(f"{name}: {arg}")
        return arg or ""

    value = re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:-|:\?)([^}]*))?\}", sub, value)
    return value.replace("$$", "$")


def dotenv_keys(path: Path, include_commented: bool = False) -> dict[str, str]:
    keys = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if include_commented:
            line = line.lstrip("# ")
        if m := re.fullmatch(r"([A-Z][A-Z0-9_]*)=(.*)", line):
            keys[m.group(1)] = m.group(2)
    return keys


def service_env(name: str, dotenv: dict[str, str] | None = None) -> dict[str, str]:
    """A service's environment as the container sees it: env_file (.env.example stands in for
    .env), then `environment`, interpolated with the example values."""
    example = dotenv_keys(ROOT / ".env.example")
    values = {**example, **(dotenv or {}), "POSTGRES_PASSWORD": FAKE_PASSWORD}
    svc = compose()["services"][name]
    env = dict(values) if svc.get("env_file") else {}
    for key, value in (svc.get("environment") or {}).items():
        env[key] = interpolate(str(value), values)
    return env


def env_refs(node: object) -> set[str]:
    """Variables a Dagster YAML file reads through `{env: NAME}`."""
    if isinstance(node, dict):
        found = {node["env"]} if set(node) == {"env"} else set()
        return found.union(*(env_refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(env_refs(v) for v in node))
    return set()


ENV_READERS = ("os.environ.get", "os.getenv", "dg.EnvVar", "EnvVar", "os.environ.setdefault")


def _string(arg: ast.expr, consts: dict[str, str]) -> str | None:
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    return consts.get(arg.id) if isinstance(arg, ast.Name) else None


def env_vars_read_by_package() -> set[str]:
    """Names vk_pipeline reads with os.environ[...] / .get / os.getenv / dg.EnvVar, module
    constants (`ENV_X = "NAME"`) resolved."""
    names: set[str] = set()
    for path in (ROOT / "vk_pipeline").rglob("*.py"):
        tree = ast.parse(path.read_text())
        consts = {
            t.id: n.value.value
            for n in tree.body
            if isinstance(n, ast.Assign) and isinstance(n.value, ast.Constant)
            for t in n.targets
            if isinstance(t, ast.Name) and isinstance(n.value.value, str)
        }
        for n in ast.walk(tree):
            target = None
            if isinstance(n, ast.Call) and n.args and ast.unparse(n.func) in ENV_READERS:
                target = n.args[0]
            elif isinstance(n, ast.Subscript) and ast.unparse(n.value) == "os.environ":
                target = n.slice
            if target is not None and (name := _string(target, consts)):
                names.add(name)
    return names


def read_by_dagster(name: str) -> bool:
    source = Path(dg.__file__).parent
    return any(name in p.read_text(errors="ignore") for p in source.rglob("*.py"))


# --------------------------------------------------------------------------------------------
# docker-compose.yml


def test_docker_compose_follows_the_compose_spec():
    jsonschema.validate(compose(), compose_schema())


def test_compose_spec_check_catches_a_broken_file():
    broken = {"services": {"postgres": {"image": "postgres:16", "ports": "5432"}}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, compose_schema())


def test_compose_runs_the_stack_make_dev_and_the_end_to_end_test_run():
    services = compose()["services"]
    assert set(services) == {"postgres", *DAGSTER_SERVICES}
    workspace = f"{dockerfile_env('final')['DAGSTER_HOME']}/workspace.yaml"
    expected = dev.commands(workspace, "0.0.0.0", 3000)
    for name in DAGSTER_SERVICES:
        assert services[name]["command"] == expected[name], name
    # The image's default command is the code server's.
    [cmd] = dockerfile_instruction("final", "CMD")
    assert json.loads(cmd) == expected["code"]
    # Webserver and daemon reach the code server where it listens.
    code_env = service_env("code")
    assert code_env["DAGSTER_CODE_SERVER_HOST"] == "0.0.0.0"
    for name in ("webserver", "daemon"):
        env = service_env(name)
        assert env["DAGSTER_CODE_SERVER_HOST"] == "code"
        assert env["DAGSTER_CODE_SERVER_PORT"] == code_env["DAGSTER_CODE_SERVER_PORT"]
        assert services[name]["depends_on"]["code"]["condition"] == "service_healthy"
    assert code_env["DAGSTER_CODE_SERVER_PORT"] in services["code"]["healthcheck"]["test"]


def test_every_variable_the_instance_and_workspace_read_is_set_for_each_dagster_service():
    instance_yaml = yaml.safe_load((ROOT / "dagster.yaml").read_text())
    workspace_yaml = yaml.safe_load((ROOT / "deploy" / "workspace.yaml").read_text())
    needed = env_refs(instance_yaml) | env_refs(workspace_yaml)
    assert needed == {
        "DAGSTER_POSTGRES_URL",
        "DAGSTER_CODE_SERVER_HOST",
        "DAGSTER_CODE_SERVER_PORT",
    }
    for name in DAGSTER_SERVICES:
        env = service_env(name)
        assert needed <= set(env), (name, needed - set(env))
        assert env["DAGSTER_POSTGRES_URL"].startswith("postgresql+psycopg2://")
        assert env["DATABASE_URL"].startswith("postgresql://")


def test_run_containers_get_what_the_code_reads_from_the_daemon():
    launcher = yaml.safe_load((ROOT / "deploy" / "dagster-docker.yaml").read_text())["run_launcher"]
    passed = launcher["config"]["env_vars"]
    daemon = service_env("daemon")
    # DockerRunLauncher fails a launch when a listed variable is unset in the daemon.
    assert all(daemon.get(v) for v in passed if v != "VK_ACCESS_TOKEN"), daemon
    assert "VK_ACCESS_TOKEN" in dotenv_keys(ROOT / ".env.example")
    assert compose()["services"]["daemon"]["env_file"] == ".env"
    read = env_vars_read_by_package()
    assert {"DATABASE_URL", "VK_ACCESS_TOKEN", "VK_API_BASE_URL"} <= read & set(passed)
    # The launcher's network is the compose network, under its fixed name.
    assert compose()["networks"]["vk_pipeline"]["name"] == launcher["config"]["network"]


def test_every_variable_compose_or_the_env_example_sets_is_read_by_something():
    """No setting that nothing reads (a typo would silently do nothing)."""
    read = env_vars_read_by_package()
    yaml_env = env_refs(yaml.safe_load((ROOT / "dagster.yaml").read_text())) | env_refs(
        yaml.safe_load((ROOT / "deploy" / "workspace.yaml").read_text())
    )
    compose_text = (ROOT / "docker-compose.yml").read_text()
    interpolated = set(re.findall(r"\$\{([A-Z_]+)", compose_text))
    # Build arguments compose passes from the environment when set.
    interpolated |= set(compose()["services"]["code"]["build"].get("args", []))
    for name in DAGSTER_SERVICES:
        for var in compose()["services"][name].get("environment", {}):
            known = var in read or var in yaml_env
            assert known or (var.startswith("DAGSTER_") and read_by_dagster(var)), (name, var)
    for var in dotenv_keys(ROOT / ".env.example", include_commented=True):
        assert var in read or var in interpolated, var
    # The drop folder the sensor reads in the code container is the mounted volume.
    drop = service_env("code")["VK_PIPELINE_DROP_DIR"]
    assert any(v.endswith(f":{drop}") for v in compose()["services"]["code"]["volumes"])
    assert "VK_PIPELINE_DROP_DIR" in read


def test_postgres_serves_both_databases_the_urls_name():
    services = compose()["services"]
    pg = services["postgres"]["environment"]
    daemon = service_env("daemon")
    assert daemon["DATABASE_URL"].endswith(f"@postgres:5432/{pg['POSTGRES_DB']}")
    assert daemon["DAGSTER_POSTGRES_URL"].endswith(f"@postgres:5432/{local.DAGSTER_DBNAME}")
    init_dir = next(v for v in services["postgres"]["volumes"] if "initdb" in v).split(":")[0]
    sql = "".join(p.read_text() for p in (ROOT / init_dir).glob("*.sql"))
    assert f"CREATE DATABASE {local.DAGSTER_DBNAME};" in sql
    assert "-d dagster" in services["postgres"]["healthcheck"]["test"][1]


def test_no_secret_is_committed():
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=ROOT, check=False)
    assert ignored.returncode == 0, ".env must be in .gitignore"
    # Without a .env the stack refuses to start rather than run on a default password.
    with pytest.raises(KeyError, match="POSTGRES_PASSWORD"):
        interpolate(compose()["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"], {})
    for name in DAGSTER_SERVICES:
        for var, value in compose()["services"][name].get("environment", {}).items():
            if "URL" in var and "@" in str(value):
                assert "${POSTGRES_PASSWORD:?" in value, (name, var)


# --------------------------------------------------------------------------------------------
# dagster.yaml


def test_dagster_yaml_is_a_valid_instance_config_on_postgres(tmp_path: Path):
    text = (ROOT / "dagster.yaml").read_text()
    assert "sqlite" not in text.lower()
    (tmp_path / "dagster.yaml").write_text(text)
    config, _ = dagster_instance_config(str(tmp_path))
    assert config["storage"]["custom"]["class"] == "PooledPostgresStorage"
    assert config["storage"]["custom"]["config"]["postgres_url"] == {"env": "DAGSTER_POSTGRES_URL"}
    assert 1 < config["concurrency"]["pools"]["default_limit"] <= 5
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["run_retries"]["enabled"] and config["run_retries"]["max_retries"] >= 1
    assert config["run_monitoring"]["enabled"]


def test_the_docker_instance_loads_with_the_docker_run_launcher(
    tmp_path: Path, pg_admin_url: str, monkeypatch: pytest.MonkeyPatch
):
    """The instance file the image assembles, on a real Postgres: storage, launcher, limits."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(
        (ROOT / "dagster.yaml").read_text() + (ROOT / "deploy" / "dagster-docker.yaml").read_text()
    )
    url = create_database(pg_admin_url, "vkdg")
    try:
        monkeypatch.setenv("DAGSTER_POSTGRES_URL", local.sqlalchemy_postgres_url(url))
        with dg.DagsterInstance.from_config(str(home)) as instance:
            assert type(instance.run_launcher).__name__ == "DockerRunLauncher"
            assert instance.run_launcher.networks == ["vk_pipeline"]
            assert type(instance.run_storage).__name__ == "PooledRunStorage"
            assert instance.run_monitoring_enabled and instance.run_retries_enabled
            assert instance.get_concurrency_config().pool_config.default_pool_limit == 3
            assert instance.get_run_records(limit=1) == []
    finally:
        drop_database(pg_admin_url, url)


def test_workspaces_load_the_definitions_module():
    workspace = yaml.safe_load((ROOT / "workspace.yaml").read_text())
    [entry] = workspace["load_from"]
    assert entry["python_module"]["module_name"] == dev.CODE_MODULE
    grpc = yaml.safe_load((ROOT / "deploy" / "workspace.yaml").read_text())
    [entry] = grpc["load_from"]
    assert entry["grpc_server"]["location_name"] == dev.LOCATION_NAME


def test_loading_the_code_location_prints_no_beta_warnings():
    out = subprocess.run(
        [sys.executable, "-W", "default", "-c", "import vk_pipeline.definitions"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "BetaWarning" not in out.stderr and "PreviewWarning" not in out.stderr, out.stderr


# --------------------------------------------------------------------------------------------
# Vendored data


def test_the_vendored_vk_schema_is_complete_and_licensed():
    root = DATA / "vk-api-schema"
    assert "MIT License" in (root / "LICENSE").read_text()
    assert "VKCOM/vk-api-schema" in (root / "SOURCE.txt").read_text()
    refs = 0
    for f in root.rglob("*.json"):
        for ref in re.findall(r'"\$ref":\s*"([^"#]+)#', f.read_text()):
            refs += 1
            assert (f.parent / ref).resolve().is_file(), (f, ref)
    assert refs > 100
    assert (DATA / "compose-spec" / "LICENSE").is_file()
