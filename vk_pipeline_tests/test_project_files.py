"""The deployment files, checked without a Docker engine: docker-compose.yml against the Compose
Specification and against what the code reads, the Dockerfile's build run in a plain venv, the
instance config Dagster loads, and the vendored data the tests carry."""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import jsonschema
import pytest
import yaml
from dagster._core.instance.config import dagster_instance_config

from vk_pipeline import dev, local
from vk_pipeline_tests.fixtures.postgres import create_database, drop_database

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
    assert config["storage"]["postgres"]["postgres_url"] == {"env": "DAGSTER_POSTGRES_URL"}
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
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
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
# Dockerfile and .dockerignore


@dataclass
class Stage:
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)


def dockerfile() -> tuple[dict[str, str], list[Stage]]:
    """Global ARGs and the stages, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        op, _, rest = line.partition(" ")
        op = op.upper()
        if op == "FROM":
            stages.append(Stage(rest.split(" AS ")[-1].strip() if " AS " in rest else "final"))
        elif not stages:
            assert op == "ARG", line
            k, _, v = rest.partition("=")
            global_args[k] = v
        else:
            stages[-1].instructions.append((op, rest.strip()))
    return global_args, stages


def stage(name: str) -> Stage:
    return next(s for s in dockerfile()[1] if s.name == name)


def dockerfile_instruction(stage_name: str, op: str) -> list[str]:
    return [rest for o, rest in stage(stage_name).instructions if o == op]


def parse_env(rest: str) -> dict[str, str]:
    return dict(tok.split("=", 1) for tok in shlex.split(rest))


def dockerfile_env(stage_name: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for rest in dockerfile_instruction(stage_name, "ENV"):
        env.update(parse_env(rest))
    return env


def dockerignore_excludes(path: str) -> bool:
    """Docker's rules: patterns in order, the last match wins, `!` re-includes; a pattern
    matching a folder matches what is inside it."""
    excluded = False
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        rx = re.escape(pattern).replace(r"\*\*/", "(.*/)?").replace(r"\*", "[^/]*")
        rx = rx.replace(r"\?", "[^/]")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(re.fullmatch(rx, p) for p in prefixes):
            excluded = not negate
    return excluded


def test_uv_is_pinned_to_the_makefiles_version():
    makefile = (ROOT / "Makefile").read_text()
    [pin] = re.findall(r"^UV_VERSION := (\S+)$", makefile, re.M)
    assert dockerfile_instruction("build", "ARG") == [f"UV_VERSION={pin}"]
    assert "uv==$(UV_VERSION)" in makefile


def test_the_image_runs_as_a_non_root_user():
    [user] = dockerfile_instruction("final", "USER")
    assert user not in ("root", "0")
    runs = dockerfile_instruction("final", "RUN")
    assert any(re.search(rf"useradd\b[^&]*\b{user}\b", r) for r in runs), runs


def test_dockerignore_keeps_secrets_and_local_state_out_and_the_sources_in():
    for path in (
        ".env",
        ".venv/bin/python",
        ".local/pgdata/PG_VERSION",
        ".git/HEAD",
        "drops/a.txt",
    ):
        assert dockerignore_excludes(path), path
    for path in ("vk_pipeline/__pycache__/x.pyc", "vk_pipeline_tests/test_dev.py"):
        assert dockerignore_excludes(path), path
    for rest in dockerfile_instruction("build", "COPY"):
        for src in shlex.split(rest)[:-1]:
            files = (
                [src]
                if (ROOT / src).is_file()
                else [str(p.relative_to(ROOT)) for p in (ROOT / src).rglob("*") if p.is_file()]
            )
            assert files and not any(
                dockerignore_excludes(f) for f in files if "__pycache__" not in f
            ), src


def _run_logged(cmd: str, cwd: Path, env: dict[str, str], log: list[str]) -> None:
    log.append(f"$ {cmd}")
    out = subprocess.run(
        ["sh", "-c", cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    log.append(out.stdout[-2000:] + out.stderr[-2000:])
    assert out.returncode == 0, "\n".join(log)


@pytest.fixture(scope="module")
def built_image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    """The build stage executed on this machine: a plain venv stands in for the base image's
    Python, absolute paths land under a temporary root, COPY copies what .dockerignore lets
    through, and every RUN runs as written (BuildKit's --mount flags dropped)."""
    root = tmp_path_factory.mktemp("image")
    base = root / "base-python"
    subprocess.run([sys.executable, "-m", "venv", str(base)], check=True)
    global_args, _ = dockerfile()
    env = {
        "PATH": f"{base}/bin:/usr/local/bin:/usr/bin:/bin",
        "HOME": os.environ.get("HOME", "/root"),
        **{k: v for k, v in global_args.items()},
    }
    for key in ("SSL_CERT_FILE", "PIP_INDEX_URL", "UV_INDEX_URL", "PIP_CERT"):
        if key in os.environ:
            env[key] = os.environ[key]
    workdir = root
    log: list[str] = []

    def rooted(p: str) -> Path:
        return root / p.lstrip("/") if p.startswith("/") else workdir / p

    for op, rest in stage("build").instructions:
        if op == "ARG":
            k, _, v = rest.partition("=")
            env[k] = v
        elif op == "ENV":
            for k, v in parse_env(rest).items():
                env[k] = str(rooted(v)) if v.startswith("/") else v
        elif op == "WORKDIR":
            workdir = rooted(rest)
            workdir.mkdir(parents=True, exist_ok=True)
        elif op == "COPY":
            *srcs, dest = shlex.split(rest)
            target = rooted(dest)
            for src in srcs:
                if (ROOT / src).is_file():
                    target.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(
                        ROOT / src, target / Path(src).name if dest.endswith("/") else target
                    )
                else:
                    for p in (ROOT / src).rglob("*"):
                        rel = p.relative_to(ROOT)
                        if p.is_file() and not dockerignore_excludes(str(rel)):
                            out = target / p.relative_to(ROOT / src)
                            out.parent.mkdir(parents=True, exist_ok=True)
                            shutil.copy2(p, out)
        elif op == "RUN":
            cmd = re.sub(r"^(--\S+\s+)+", "", rest)
            _run_logged(cmd, workdir, env, log)
        else:
            raise AssertionError(f"the test does not know how to run {op}")
    final = dockerfile_env("final")
    runtime = {
        **env,
        **{k: str(rooted(v)) if v.startswith("/") else v for k, v in final.items() if k != "PATH"},
    }
    runtime["PATH"] = f"{runtime['VIRTUAL_ENV']}/bin:/usr/bin:/bin"
    yield root, runtime


def test_the_dockerfile_build_installs_a_venv_that_serves_the_code_location(built_image):
    root, env = built_image
    venv = Path(env["VIRTUAL_ENV"])
    # Installed from the wheel, without the dev extra, with the Docker run launcher.
    check = (
        "import importlib.util as u, vk_pipeline;"
        "print(vk_pipeline.__file__, bool(u.find_spec('dagster_docker')), bool(u.find_spec('pytest')))"
    )
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c", check],
        cwd=root,  # not the checkout: the import must come from the venv
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out[0].startswith(str(venv)) and out[1:] == ["True", "False"], out
    # The instance the image carries: dagster.yaml with the Docker run launcher appended.
    home = Path(env["DAGSTER_HOME"])
    config, _ = dagster_instance_config(str(home))
    assert config["run_launcher"]["class"] == "DockerRunLauncher"
    assert config["storage"]["postgres"]["postgres_url"] == {"env": "DAGSTER_POSTGRES_URL"}
    assert (home / "workspace.yaml").read_text() == (ROOT / "deploy" / "workspace.yaml").read_text()

    # CMD: the code server, from the venv's PATH; it answers a gRPC health check.
    port = dev.free_port()
    cmd_env = {
        **env,
        "DAGSTER_CODE_SERVER_HOST": "127.0.0.1",
        "DAGSTER_CODE_SERVER_PORT": str(port),
    }
    [cmd] = dockerfile_instruction("final", "CMD")
    workdir = root / dockerfile_instruction("final", "WORKDIR")[0].lstrip("/")
    server = subprocess.Popen(
        json.loads(cmd),
        cwd=workdir,
        env=cmd_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        status = None
        while time.monotonic() < deadline and server.poll() is None:
            status = subprocess.run(
                ["dagster", "api", "grpc-health-check", "-p", str(port)],
                env=cmd_env,
                capture_output=True,
                text=True,
                check=False,
            )
            if status.returncode == 0:
                break
            time.sleep(2)
        assert status is not None and status.returncode == 0, (server.poll(), status)
    finally:
        dev.stop_process_group(server, timeout=60)


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
