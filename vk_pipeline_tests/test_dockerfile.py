"""The Dockerfile and .dockerignore, checked without a Docker engine: uv pinned as in the
Makefile, a non-root runtime user, the build context, and the build stage's RUN commands and the
image's CMD executed in a plain venv."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from dagster._core.instance.config import dagster_instance_config

from vk_pipeline import dev
from vk_pipeline_tests.deployfiles import (
    ROOT,
    dockerfile,
    dockerfile_env,
    dockerfile_instruction,
    dockerignore_excludes,
    parse_env,
    stage,
)

# Package index and CA settings: the emulated build uses this machine's, not paths inside an image.
HOST_NETWORK_KEYS = ("SSL_CERT_FILE", "PIP_CERT", "PIP_INDEX_URL", "UV_INDEX_URL")


def test_uv_is_pinned_to_the_makefiles_version():
    makefile = (ROOT / "Makefile").read_text()
    [pin] = re.findall(r"^UV_VERSION := (\S+)$", makefile, re.M)
    assert f"UV_VERSION={pin}" in dockerfile_instruction("build", "ARG")
    assert "uv==$(UV_VERSION)" in makefile


def test_the_build_pulls_nothing_but_its_base_image_which_defaults_to_the_real_one():
    # A `# syntax=` directive makes BuildKit pull a frontend image: offline builds fail on it.
    assert not re.search(r"^#\s*syntax\s*=", (ROOT / "Dockerfile").read_text(), re.M | re.I)
    global_args, _ = dockerfile()
    assert global_args == {"PYTHON_IMAGE": "python:3.11-slim-bookworm"}
    # No extra CA unless one is passed (the stack test passes this machine's).
    assert "CA_CERTIFICATES=" in dockerfile_instruction("build", "ARG")
    # Compose passes through only arguments the Dockerfile declares, and defaults to real images.
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    declared = {a.partition("=")[0] for a in dockerfile_instruction("build", "ARG")} | set(
        global_args
    )
    assert set(services["code"]["build"]["args"]) <= declared
    assert services["postgres"]["image"] == "${POSTGRES_IMAGE:-postgres:16}"


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
    # Where packages come from and which CAs to trust are this machine's, not the image's paths.
    env.update({k: os.environ[k] for k in HOST_NETWORK_KEYS if k in os.environ})
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
                if k in HOST_NETWORK_KEYS:
                    continue
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
    # Installed from the wheel, without the dev extra, with the Docker and Kubernetes run launchers.
    check = (
        "import importlib.util as u, vk_pipeline;"
        "print(vk_pipeline.__file__, bool(u.find_spec('dagster_docker')),"
        " bool(u.find_spec('dagster_k8s')), bool(u.find_spec('pytest')))"
    )
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c", check],
        cwd=root,  # not the checkout: the import must come from the venv
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out[0].startswith(str(venv)) and out[1:] == ["True", "True", "False"], out
    # The instance the image carries: dagster.yaml with the Docker run launcher appended.
    home = Path(env["DAGSTER_HOME"])
    config, _ = dagster_instance_config(str(home))
    assert config["run_launcher"]["class"] == "DockerRunLauncher"
    assert config["storage"]["custom"]["class"] == "PooledPostgresStorage"
    assert config["storage"]["custom"]["config"]["postgres_url"] == {"env": "DAGSTER_POSTGRES_URL"}
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
