"""The compose stack as a user runs it, in a project folder of the test's own.

The project folder holds what a user's checkout would: `.env` (filled in from `.env.example`),
`drops/` and `deploy/postgres-init/`, so the test never touches the checkout's `.env` or `drops/`.
An override file adds only what the test needs: the build context (the checkout), the build's
network, and the VK emulator as a service on the stack's network, from the same image.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml

from stack_test.engine import COMPOSE, Engine, StackTestError, inspect, run
from vk_pipeline import dev
from vk_pipeline.emulator.world import World, WorldSpec

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "vk-pipeline-stack-test"
# The network's fixed name in docker-compose.yml, which the run launcher attaches runs to.
NETWORK = "vk_pipeline"
EMULATOR_PORT = 8765
# A small world: three groups, of which the dropped file names two.
WORLD = WorldSpec(seed=1, groups=3, posts=30, comments=100, special_groups=False)
FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}


def dotenv_from_example(values: dict[str, str]) -> str:
    """.env.example with `values` filled in. Every setting the test makes must be one the example
    documents (set or commented out), as a user would find it there."""
    left = dict(values)
    lines = []
    for line in (ROOT / ".env.example").read_text().splitlines():
        m = re.fullmatch(r"#?\s*([A-Z][A-Z0-9_]*)=.*", line)
        if m and m.group(1) in left:
            line = f"{m.group(1)}={left.pop(m.group(1))}"
        lines.append(line)
    if left:
        raise StackTestError(f".env.example does not document {sorted(left)}")
    return "\n".join(lines) + "\n"


def emulator_args(spec: WorldSpec) -> list[str]:
    args = ["--seed", str(spec.seed), "--groups", str(spec.groups)]
    args += ["--posts", str(spec.posts), "--comments", str(spec.comments)]
    return args + ([] if spec.special_groups else ["--no-special-groups"])


@dataclass
class Stack:
    engine: Engine
    folder: Path
    image: str
    postgres_image: str
    password: str
    token: str
    postgres_port: int
    webserver_port: int

    @classmethod
    def create(cls, engine: Engine, folder: Path, image: str, postgres_image: str) -> Stack:
        stack = cls(
            engine,
            folder,
            image,
            postgres_image,
            # Letters and digits: the password goes into connection URLs unquoted.
            password=secrets.token_hex(16),
            token=f"stack-test-{secrets.token_hex(12)}",
            postgres_port=dev.free_port(),  # 5432 may be taken on the host
            webserver_port=dev.free_port(),
        )
        (folder / "drops").mkdir(parents=True)
        shutil.copytree(ROOT / "deploy" / "postgres-init", folder / "deploy" / "postgres-init")
        (folder / ".env").write_text(dotenv_from_example(stack.settings()))
        (folder / ".env").chmod(0o600)
        (folder / "compose.stack-test.yml").write_text(yaml.safe_dump(stack.override()))
        return stack

    def settings(self) -> dict[str, str]:
        return {
            "POSTGRES_PASSWORD": self.password,
            "VK_ACCESS_TOKEN": self.token,
            "VK_API_BASE_URL": f"http://vkemu:{EMULATOR_PORT}/method",
            "DOCKER_GID": str(self.engine.socket_gid()),
            "DOCKER_SOCKET": str(self.engine.socket),
            "POSTGRES_PORT": str(self.postgres_port),
            "DAGSTER_WEBSERVER_PORT": str(self.webserver_port),
            "VK_PIPELINE_IMAGE": self.image,
            "POSTGRES_IMAGE": self.postgres_image,
        }

    def override(self) -> dict:
        health = f"import socket; socket.create_connection(('127.0.0.1', {EMULATOR_PORT}), 2)"
        return {
            "services": {
                # Compose resolves the build context against the project folder: the checkout's.
                "code": {"build": {"context": str(ROOT), "network": "host"}},
                "vkemu": {
                    "image": self.image,
                    "command": [
                        "python",
                        "-m",
                        "vk_pipeline.emulator",
                        "--host",
                        "0.0.0.0",
                        "--port",
                        str(EMULATOR_PORT),
                        *emulator_args(WORLD),
                    ],
                    # The token the stack uses, passed through the environment (not argv).
                    "environment": {"VK_EMULATOR_TOKENS": "${VK_ACCESS_TOKEN:?}"},
                    "healthcheck": {
                        "test": ["CMD", "python", "-c", health],
                        "interval": "2s",
                        "retries": 60,
                    },
                    "networks": [NETWORK],
                },
            }
        }

    def compose(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        check: bool = True,
        timeout: float = 900,
    ) -> subprocess.CompletedProcess[str]:
        files = [ROOT / "docker-compose.yml", self.folder / "compose.stack-test.yml"]
        cmd = [COMPOSE, "--project-name", PROJECT, "--project-directory", str(self.folder)]
        for f in files:
            cmd += ["--file", str(f)]
        return run(
            [*cmd, *args], env={**self.engine.env, **(env or {})}, check=check, timeout=timeout
        )

    # ---------------------------------------------------------------------------------------
    # Talking to the running stack

    def graphql(self, query: str) -> dict:
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.webserver_port}/graphql",
            data=json.dumps({"query": query}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            body = json.load(resp)
        if body.get("errors"):
            raise StackTestError(f"GraphQL: {body['errors']}")
        return body["data"]

    def server_info(self) -> dict | None:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.webserver_port}/server_info", timeout=10
            ) as resp:
                return json.load(resp) if resp.status == 200 else None
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return None

    def runs(self) -> list[dict]:
        data = self.graphql(
            "{ runsOrError { ... on Runs { results { runId status jobName startTime endTime"
            " tags { key value } } } } }"
        )
        return data["runsOrError"]["results"]

    def drop(self, name: str, text: str) -> None:
        """Written beside, then renamed in: the sensor never sees half a file."""
        tmp = self.folder / "drops" / f".{name}.tmp"
        tmp.write_text(text)
        tmp.rename(self.folder / "drops" / name)

    def database_url(self, db: str) -> str:
        return f"postgresql://vk:{self.password}@127.0.0.1:{self.postgres_port}/{db}"

    def run_containers(self) -> list[str]:
        """The run launcher's containers: labelled with a run id, on the stack's network (which
        the test made sure was not there before it started)."""
        out = self.engine.docker("ps", "--all", "--quiet", "--filter", "label=dagster/run_id")
        ids = out.stdout.split()
        return (
            [
                c["Id"]
                for c in inspect(self.engine, *ids)
                if c["HostConfig"]["NetworkMode"] == NETWORK
            ]
            if ids
            else []
        )

    def logs(self) -> str:
        """Every service's and run container's output, for diagnosis and the secrets check."""
        text = self.compose("logs", "--no-color", "--timestamps", check=False).stdout
        for cid in self.run_containers():
            text += f"\n--- run container {cid}\n"
            out = self.engine.docker("logs", cid, check=False)
            text += out.stdout + out.stderr
        return text

    def down(self) -> None:
        """Run containers, then the stack with its volumes and networks."""
        containers = self.run_containers()
        if containers:
            self.engine.docker("rm", "--force", *containers)
        self.compose("down", "--volumes", "--remove-orphans", "--timeout", "20")


def truth(group_ids: list[int]) -> dict[int, tuple[int, int]]:
    """group id -> (posts, live comments) in the emulator's world: what a crawl must store."""
    world = World(WORLD)
    out = {}
    for gid in group_ids:
        posts = world.posts(gid)
        live = [c for p in posts for c in world.comments(gid, p["id"]) if not c.get("deleted")]
        out[gid] = (len(posts), len(live))
    return out


def world_groups() -> tuple[list[int], str]:
    """The two groups the dropped file names, and the file: one by id, one by screen name."""
    world = World(WORLD)
    first, second = world.group_ids()[:2]
    return [first, second], f"club{first}\n{world.group(second)['screen_name']}\n"
