"""A one-node Ray cluster on 127.0.0.1, for trying the Ray engine and for tests and benchmarks.

    >>> from tinyharden.sweep.loopback import loopback_cluster  # doctest: +SKIP
    >>> with loopback_cluster(num_cpus=2) as address:
    ...     run_sweep(path, storage=Path("runs"), engine=Engine(address=address))

`ray start --head --block` runs in a process group of its own with every port chosen free
(so it never meets another cluster on the machine) and a private temp dir; leaving the
block stops exactly that group, never `ray stop` (which would stop every Ray on the host).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

_PORT_FLAGS = ("--port", "--ray-client-server-port", "--dashboard-agent-listen-port", "--dashboard-agent-grpc-port",
               "--metrics-export-port", "--node-manager-port", "--object-manager-port", "--runtime-env-agent-port")


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _stop(head: subprocess.Popen) -> None:
    head.terminate()
    try:
        head.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(head.pid, signal.SIGKILL)  # raylet, GCS and workers share the group we created


@contextlib.contextmanager
def loopback_cluster(*, num_cpus: int = 2, env: dict[str, str] | None = None,
                     timeout: float = 120.0) -> Iterator[str]:
    """Start a head node, yield its address ("127.0.0.1:PORT"), stop it on exit."""
    ray = shutil.which("ray")
    if ray is None:
        raise RuntimeError("the ray command is not on PATH; pip install 'ray[default]'")
    ports = free_ports(len(_PORT_FLAGS))
    temp = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    full_env = {**os.environ, **(env or {}), "RAY_USAGE_STATS_ENABLED": "0"}
    full_env.pop("RAY_ADDRESS", None)
    cmd = [ray, "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--num-cpus", str(num_cpus),
           "--include-dashboard=false", "--disable-usage-stats", "--temp-dir", str(temp)]
    for flag, port in zip(_PORT_FLAGS, ports):
        cmd += [flag, str(port)]
    head = subprocess.Popen(cmd, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while not list(temp.glob("session_*/sockets/raylet*")):
            if head.poll() is not None:
                raise RuntimeError(f"ray start --head exited with code {head.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Ray head did not come up in {timeout:.0f} s")
            time.sleep(1)
        yield f"127.0.0.1:{ports[0]}"
    finally:
        _stop(head)
        shutil.rmtree(temp, ignore_errors=True)
