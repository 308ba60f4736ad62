"""A small client of Airflow 3's REST API v2 (JWT from SimpleAuthManager's /auth/token)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from tradepipe.settings import env_var, settings

TERMINAL = ("success", "failed")


@dataclass(frozen=True)
class AirflowAPI:
    """Airflow's api-server at ``url`` (e.g. http://127.0.0.1:8080), as ``username``."""

    url: str
    username: str
    password: str = field(repr=False)

    @classmethod
    def from_env(cls) -> AirflowAPI:
        """TRADEPIPE_AIRFLOW_URL, TRADEPIPE_AIRFLOW_USER and TRADEPIPE_AIRFLOW_PASSWORD (ValueError when unset)."""
        env = settings()
        if env.airflow_password is None:
            raise ValueError(f"set {env_var('airflow_password')} to call Airflow's REST API at {env.airflow_url}")
        return cls(env.airflow_url, env.airflow_user, env.airflow_password.get_secret_value())

    def token(self) -> str:
        """A JWT for the REST API."""
        response = httpx.post(f"{self.url}/auth/token", json={"username": self.username, "password": self.password},
                              timeout=30.0)
        response.raise_for_status()
        return str(response.json()["access_token"])

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call ``/api/v2{path}`` and return the decoded JSON; raise on an error status."""
        headers = {"Authorization": f"Bearer {self.token()}"}
        response = httpx.request(method, f"{self.url}/api/v2{path}", headers=headers, timeout=30.0, **kwargs)
        response.raise_for_status()
        return response.json()

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        """Start a run of ``dag_id`` now; return its run id."""
        run = self.request("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf or {}})
        return str(run["dag_run_id"])

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        """The runs of ``dag_id``, oldest first."""
        return list(self.request("GET", f"/dags/{dag_id}/dagRuns", params={"order_by": "run_after"})["dag_runs"])

    def wait(self, dag_id: str, run_id: str, timeout_s: float, poll_s: float = 5.0) -> str:
        """Wait (at most ``timeout_s``) for the run to finish; return its state ('running'... on timeout)."""
        deadline = time.monotonic() + timeout_s
        while True:
            state = str(self.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"])
            if state in TERMINAL or time.monotonic() > deadline:
                return state
            time.sleep(poll_s)
