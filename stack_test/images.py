"""Stand-ins for the registry's base images, made from Debian's packages, under tags of their own.

The registry's `python:` and `postgres:` images may not be pullable (as on this workplace's
machines), and a user's own copies of them must never be retagged or overwritten. So the test
imports a minimal Debian from `mmdebstrap`, builds the two stand-ins in `stack_test/images/` on it
under the `vk-pipeline-stack-test/` prefix, and passes their tags to the Dockerfile and compose
(PYTHON_IMAGE, POSTGRES_IMAGE), whose defaults stay the real images.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from stack_test.engine import DOCKER, Engine, StackTestError

HERE = Path(__file__).resolve().parent
PREFIX = "vk-pipeline-stack-test"
SUITE = "bookworm"  # Python 3.11 and PostgreSQL 15 are bookworm's
BASE_TAG = f"{PREFIX}/debian:{SUITE}"
PYTHON_TAG = f"{PREFIX}/python:3.11-{SUITE}"
POSTGRES_TAG = f"{PREFIX}/postgres:15-{SUITE}"
PROJECT_TAG = f"{PREFIX}/vk_pipeline:latest"
ALL_TAGS = (PROJECT_TAG, POSTGRES_TAG, PYTHON_TAG, BASE_TAG)
DEFAULT_MIRROR = "http://deb.debian.org/debian"


def debian_mirror() -> str:
    """The Debian mirror this machine's apt uses for its release (deb822 `.sources` files or a
    classic `sources.list`), so the images come from where the host's packages do."""
    apt = Path("/etc/apt")
    for f in sorted((apt / "sources.list.d").glob("*.sources")):
        for stanza in re.split(r"\n\s*\n", f.read_text()):
            fields = dict(re.findall(r"^(\w[\w-]*):\s*(.*)$", stanza, re.M))
            if SUITE in fields.get("Suites", "").split() and fields.get("URIs"):
                return fields["URIs"].split()[0]
    for f in [apt / "sources.list", *sorted((apt / "sources.list.d").glob("*.list"))]:
        if f.exists():
            for line in f.read_text().splitlines():
                m = re.match(r"deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)", line)
                if m and m.group(2) == SUITE:
                    return m.group(1)
    return DEFAULT_MIRROR


def import_base(engine: Engine, log: Path) -> None:
    """A minimal Debian (essential packages and apt) straight from mmdebstrap's tarball into the
    engine. mmdebstrap rather than debootstrap: it writes the tarball to a pipe (no root-owned tree
    to clean up) and installs with apt in one go, about twice as fast here."""
    with log.open("wb") as err:
        mm = subprocess.Popen(
            [
                "mmdebstrap",
                "--variant=apt",
                "--quiet",
                # A throwaway image: no fsync per unpacked file.
                "--dpkgopt=force-unsafe-io",
                '--aptopt=Acquire::Languages "none"',
                SUITE,
                "-",
                debian_mirror(),
            ],
            stdout=subprocess.PIPE,
            stderr=err,
            stdin=subprocess.DEVNULL,
        )
        assert mm.stdout is not None
        imported = subprocess.run(
            [DOCKER, "import", "-", BASE_TAG],
            stdin=mm.stdout,
            env=engine.env,
            capture_output=True,
            text=True,
            check=False,
        )
        mm.stdout.close()
        mm.wait()
    if mm.returncode != 0 or imported.returncode != 0:
        raise StackTestError(
            f"base image: mmdebstrap exited {mm.returncode}, docker import {imported.returncode}:\n"
            f"{log.read_text()[-2000:]}\n{imported.stderr[-1000:]}"
        )


def start_build(engine: Engine, name: str, tag: str, log: Path) -> subprocess.Popen[bytes]:
    """Build stack_test/images/<name> on the base image, in the background. Its downloads use the
    host's network: the test's own engine forwards no traffic."""
    return subprocess.Popen(
        [
            DOCKER,
            "build",
            "--network=host",
            f"--build-arg=BASE={BASE_TAG}",
            f"--tag={tag}",
            str(HERE / "images" / name),
        ],
        env={**engine.env, "DOCKER_BUILDKIT": "1"},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )


def finish_build(proc: subprocess.Popen[bytes], what: str, log: Path, timeout: float = 600) -> None:
    if proc.wait(timeout=timeout) != 0:
        raise StackTestError(f"{what} did not build:\n{log.read_text()[-3000:]}")


def remove_images(engine: Engine) -> None:
    """Only the test's own tags (ALL_TAGS), never an image it did not build."""
    present = [
        t for t in ALL_TAGS if engine.docker("image", "inspect", t, check=False).returncode == 0
    ]
    if present:
        engine.docker("image", "rm", *present)
