"""A local Airflow 3 stack: api-server, scheduler, dag-processor and triggerer as subprocesses.

LocalExecutor on a SQLite metadata database in a private AIRFLOW_HOME, SimpleAuthManager with one admin user
whose password is written up front. ``python -m tradepipe.orchestration.stack`` runs it until Ctrl-C
(``make airflow``); tests use :class:`AirflowStack` as a context manager.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType

import httpx

from tradepipe.orchestration.airflow_api import AirflowAPI
from tradepipe.orchestration.project import BIN, bin_path
from tradepipe.settings import PROJECT_ENV, env_var, settings

COMPONENTS = {"api-server": ["api-server", "--host", "127.0.0.1", "--port", "{port}"], "scheduler": ["scheduler"],
              "dag-processor": ["dag-processor"], "triggerer": ["triggerer"]}
USER = "admin"


class StackError(RuntimeError):
    """Airflow did not come up; the message names the log to read."""


class AirflowStack:
    """Airflow serving the DAGs of ``project`` on 127.0.0.1:``port``, its state under ``home``."""

    def __init__(self, project: Path, home: Path, port: int, password: str) -> None:
        self.project, self.home, self.port, self.password = project.resolve(), home.resolve(), port, password
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.api = AirflowAPI(f"http://127.0.0.1:{port}", USER, password)

    def env(self) -> dict[str, str]:
        """The environment every Airflow process (and so every task) runs with."""
        url = f"http://127.0.0.1:{self.port}"
        return {**os.environ, "PATH": bin_path(), "AIRFLOW_HOME": str(self.home), PROJECT_ENV: str(self.project),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.project / "dags"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": "4", "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.home / "passwords.json"),
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",
                "AIRFLOW__API__BASE_URL": url, "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API_AUTH__JWT_SECRET": self._secret("jwt"), "AIRFLOW__API__SECRET_KEY": self._secret("key"),
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2"}

    def _secret(self, name: str) -> str:
        """A random secret kept under ``home``, so that every process (and a restart) shares it."""
        path = self.home / f".{name}"
        if not path.exists():
            path.write_text(secrets.token_hex(32))
        return path.read_text()

    def start(self, timeout_s: float = 240.0) -> AirflowAPI:
        """Migrate the database, start the components, wait until the API answers; return a client."""
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "passwords.json").write_text(json.dumps({USER: self.password}))
        env = self.env()
        subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, check=True, capture_output=True)
        for name, args in COMPONENTS.items():
            log = (self.home / f"{name}.log").open("ab")
            self.processes[name] = subprocess.Popen([str(BIN / "airflow"), *(a.format(port=self.port) for a in args)],
                                                    env=env, stdout=log, stderr=subprocess.STDOUT,
                                                    start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                if httpx.get(f"{self.api.url}/api/v2/monitor/health", timeout=5.0).status_code == 200:
                    return self.api
            except httpx.TransportError:
                pass
            time.sleep(2.0)
        raise StackError(f"the api-server did not answer within {timeout_s:.0f} s; see {self.home}/api-server.log")

    def check_alive(self) -> None:
        """Raise StackError when a component has exited."""
        for name, proc in self.processes.items():
            if proc.poll() is not None:
                raise StackError(f"airflow {name} exited with {proc.returncode}; see {self.home}/{name}.log")

    def stop(self, grace_s: float = 30.0) -> None:
        """Terminate each component's process group; kill what is left after ``grace_s``."""
        for proc in self.processes.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for proc in self.processes.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        self.processes.clear()

    def __enter__(self) -> AirflowStack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def main() -> None:
    """Run the stack for a user until Ctrl-C, printing the UI address and login."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=Path.cwd())
    parser.add_argument("--home", type=Path, default=Path.cwd() / ".airflow")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    configured = settings().airflow_password
    password = configured.get_secret_value() if configured else secrets.token_urlsafe(12)
    shown = f"${env_var('airflow_password')}" if configured else password  # never echo a configured secret
    stack = AirflowStack(args.project, args.home, args.port, password)
    with stack:
        print(f"Airflow UI: {stack.api.url}  login: {USER} / {shown}  (logs: {stack.home}/*.log; Ctrl-C stops)",
              flush=True)
        try:
            while True:
                stack.check_alive()
                time.sleep(5.0)
        except KeyboardInterrupt:
            print("stopping Airflow", flush=True)


if __name__ == "__main__":
    main()
