"""The records API's fast path: ask Dagster for a push run as soon as a record is enqueued.

``qbo_outbox_sensor`` turns outbox rows into push runs, but Dagster's sensor daemon evaluates
sensors on a fixed loop of about 5 s, so a record waited 0-5 s before its run was even asked
for. When ``QB_DAGSTER_GRAPHQL_URL`` names the dagster-webserver's GraphQL endpoint
(``http://dagster:3000/graphql``), the web app asks for the company's push run itself, right
after the enqueue commits:

* in a background thread, never in the request: the ``202`` does not wait, and a Dagster that is
  down, slow or refusing costs the enqueue nothing (logged at warning level, once per minute);
* coalesced per company: a burst of enqueues makes one request to Dagster at a time, and none
  while a push run of the company is already *queued* (it reads the outbox when it starts, so it
  takes the new rows); while one is *running*, one more run is queued behind it (the instance's
  ``qbo/company-push`` tag limit keeps them one at a time), as the sensor would ask for;
* the run is the sensor's: ``qbo_push_job``, partition = company, tags ``qbo/company-push`` and
  ``qbo/trigger=api``; the sensor stays the backstop (a company never connected, a partition not
  yet known to Dagster, a launch that failed: the sensor's next tick asks for the run).

Plain HTTP (``requests``) to Dagster's public GraphQL API: the web layer imports nothing of
Dagster. The names below must match :mod:`qb_pipelines.defs.push` (a test checks they do).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import requests

log = logging.getLogger(__name__)

__all__ = ["PUSH_JOB_NAME", "PUSH_TAG", "PushLauncher"]

#: The push job and its per-company run tag (``qb_pipelines.defs.push``).
PUSH_JOB_NAME = "qbo_push_job"
PUSH_TAG = "qbo/company-push"
#: Seconds one GraphQL call may take.
TIMEOUT_S = 10.0

_WHERE = """
query PushJobWhere {
  repositoriesOrError {
    __typename
    ... on RepositoryConnection { nodes { name location { name } jobs { name } } }
    ... on PythonError { message }
  }
}
"""

_QUEUED = """
query QueuedPushes($tags: [ExecutionTag!]) {
  runsOrError(filter: {tags: $tags, statuses: [QUEUED, NOT_STARTED]}, limit: 1) {
    __typename
    ... on Runs { results { runId } }
    ... on PythonError { message }
  }
}
"""

_LAUNCH = """
mutation LaunchPush($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on Error { message }
  }
}
"""


class LaunchError(RuntimeError):
    """Dagster refused or could not be reached (the message says which)."""


class PushLauncher:
    """Asks the dagster-webserver at ``url`` for push runs, one company at a time, in the background.

    Args:
        url: the GraphQL endpoint (``.../graphql``).
        company_of: the company key of a tenant (``None``: not connected, nothing to launch).
    """

    def __init__(self, url: str, company_of: Any) -> None:
        self.url = url
        self._company_of = company_of
        self._lock = threading.Lock()
        self._wanted: set[str] = set()     # tenants enqueued since their worker last looked
        self._working: set[str] = set()    # tenants whose worker thread runs
        self._where: tuple[str, str] | None = None
        self._warned_at = 0.0
        self._session = requests.Session()
        #: Runs launched (tests and the benchmark read it).
        self.launched: list[str] = []

    def records_enqueued(self, tenant: str) -> None:
        """Called after an enqueue committed: make sure a push run of the tenant's company comes."""
        with self._lock:
            self._wanted.add(tenant)
            if tenant in self._working:
                return
            self._working.add(tenant)
        threading.Thread(target=self._work, args=(tenant,), name=f"push-launch-{tenant}", daemon=True).start()

    def _work(self, tenant: str) -> None:
        while True:
            with self._lock:
                if tenant not in self._wanted:
                    self._working.discard(tenant)
                    return
                self._wanted.discard(tenant)
            try:
                self._launch_for(tenant)
            except Exception as exc:  # best effort: the outbox sensor is the backstop
                self._warn(f"asking Dagster for a push run of tenant {tenant} failed ({exc}); "
                           "the outbox sensor will start it")

    def _warn(self, message: str) -> None:
        now = time.monotonic()
        if now - self._warned_at > 60:
            self._warned_at = now
            log.warning("%s", message)

    def _call(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self._session.post(self.url, json={"query": query, "variables": variables or {}},
                                      timeout=TIMEOUT_S)
        try:
            body = response.json()
        except ValueError:
            body = {}
        if body.get("errors"):
            raise LaunchError(f"HTTP {response.status_code}: {str(body['errors'][0].get('message', ''))[:300]}")
        if not body.get("data"):  # Dagster answers a refused launch with its error as data (and HTTP 500)
            raise LaunchError(f"{self.url} answered HTTP {response.status_code}")
        return dict(body["data"])

    def _job_location(self) -> tuple[str, str]:
        if self._where is None:
            found = self._call(_WHERE)["repositoriesOrError"]
            for repo in found.get("nodes", []):
                if any(job["name"] == PUSH_JOB_NAME for job in repo.get("jobs", [])):
                    self._where = (repo["location"]["name"], repo["name"])
                    break
            else:
                raise LaunchError(f"no code location of {self.url} has {PUSH_JOB_NAME}")
        return self._where

    def _launch_for(self, tenant: str) -> str | None:
        company = self._company_of(tenant)
        if company is None:
            return None
        tags = [{"key": PUSH_TAG, "value": company}]
        queued = self._call(_QUEUED, {"tags": tags})["runsOrError"]
        if queued.get("results"):
            return None  # a queued push reads the outbox when it starts: it takes these rows
        location, repository = self._job_location()
        params = {
            "selector": {"repositoryLocationName": location, "repositoryName": repository, "jobName": PUSH_JOB_NAME},
            "runConfigData": {},
            "executionMetadata": {"tags": [*tags, {"key": "dagster/partition", "value": company},
                                           {"key": "qbo/trigger", "value": "api"}]},
        }
        answer = self._call(_LAUNCH, {"executionParams": params})["launchRun"]
        if answer.get("__typename") != "LaunchRunSuccess":
            self._where = None  # a reloaded location may have moved the job
            raise LaunchError(f"{answer.get('__typename')}: {str(answer.get('message', ''))[:300]}")
        run_id = str(answer["run"]["runId"])
        self.launched.append(run_id)
        return run_id
