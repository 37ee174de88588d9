"""The fast paths: ask Dagster for a run as soon as a record is enqueued or a webhook is stored.

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

The same for QuickBooks' webhooks (:class:`LandingLauncher`): ``qbo_webhook_sensor`` would see a
stored event on its next tick (the sensor daemon's loop: up to 5 s). The intake asks at once for
the company's incremental landing of the entities named, the run the sensor would request
(``qbo_incremental_job``, tags ``qbo/company``, ``qbo/trigger=webhook``, ``qbo/entities``, priority
10), plus ``qbo/webhook-through``: the inbox's latest sequence number when the run was asked for.
The sensor skips the events such a run covers (same company, entity among its entities, sequence
number not above it: the run's CDC call comes after them) and requests runs for the rest only.
No run is asked for while a landing of the company and those entities waits in the queue: it has
not started, so its CDC call comes after the new events too (a stream of changes makes one run
wait behind the running one, not one run per delivery).

Plain HTTP (``requests``) to Dagster's public GraphQL API: the web layer imports nothing of
Dagster. The names below must match :mod:`qb_pipelines.defs.push`, :mod:`qb_pipelines.defs.jobs`
and :mod:`qb_pipelines.defs.run_coordinator` (a test checks they do).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import requests

from qb_pipelines.qbo import registry
from qb_pipelines.store.warehouse.naming import snake

log = logging.getLogger(__name__)

__all__ = ["COMPANY_TAG", "LANDING_JOB_NAME", "PUSH_JOB_NAME", "PUSH_TAG", "THROUGH_TAG", "LandingLauncher",
           "PushLauncher", "entity_asset_path"]

#: The push job and its per-company run tag (``qb_pipelines.defs.push``).
PUSH_JOB_NAME = "qbo_push_job"
PUSH_TAG = "qbo/company-push"
#: The incremental landing job, its per-company tag and its priority (``defs.jobs``, ``defs.run_coordinator``).
LANDING_JOB_NAME = "qbo_incremental_job"
COMPANY_TAG = "qbo/company"
PRIORITY_TAG = "dagster/priority"
URGENT_PRIORITY = 10
#: Tag of a landing run asked for by the intake: the inbox's latest sequence number then.
THROUGH_TAG = "qbo/webhook-through"
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
query QueuedRuns($tags: [ExecutionTag!]) {
  runsOrError(filter: {tags: $tags, statuses: [QUEUED, NOT_STARTED]}, limit: 20) {
    __typename
    ... on Runs { results { runId jobName tags { key value } } }
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


def entity_asset_path(entity: str) -> list[str]:
    """The asset key path of a registry entity's raw asset (``qb_pipelines.defs.assets.entity_asset_key``)."""
    return ["qbo", snake(registry.get(entity).name)]


class _Launcher:
    """Dagster's GraphQL API, and one background worker per key asking for runs, coalesced.

    ``_want(key, detail)`` records that a run is wanted for ``key`` and starts the key's worker
    unless it runs; the worker calls ``_launch(key, details)`` with everything wanted since its
    last call, until nothing more is wanted. Failures are logged (once a minute), never raised.
    """

    what = "a run"
    backstop = "the sensor"

    def __init__(self, url: str) -> None:
        self.url = url
        self._lock = threading.Lock()
        self._wanted: dict[str, set[Any]] = {}   # key -> details wanted since its worker last looked
        self._working: set[str] = set()           # keys whose worker thread runs
        self._where: dict[str, tuple[str, str]] = {}
        self._warned_at = 0.0
        self._session = requests.Session()
        #: Runs launched (tests and the benchmark read it).
        self.launched: list[str] = []

    def _want(self, key: str, details: set[Any]) -> None:
        with self._lock:
            self._wanted.setdefault(key, set()).update(details)
            if key in self._working:
                return
            self._working.add(key)
        threading.Thread(target=self._work, args=(key,), name=f"dagster-launch-{key}", daemon=True).start()

    def _work(self, key: str) -> None:
        while True:
            with self._lock:
                details = self._wanted.pop(key, None)
                if details is None:
                    self._working.discard(key)
                    return
            try:
                self._launch(key, details)
            except Exception as exc:  # best effort: the sensor is the backstop
                self._warn(f"asking Dagster for {self.what} of {key} failed ({exc}); {self.backstop} will start it")

    def _launch(self, key: str, details: set[Any]) -> None:
        raise NotImplementedError

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

    def _job_location(self, job: str) -> tuple[str, str]:
        if job not in self._where:
            found = self._call(_WHERE)["repositoriesOrError"]
            for repo in found.get("nodes", []):
                if any(j["name"] == job for j in repo.get("jobs", [])):
                    self._where[job] = (repo["location"]["name"], repo["name"])
                    break
            else:
                raise LaunchError(f"no code location of {self.url} has {job}")
        return self._where[job]

    def _queued(self, tags: list[dict[str, str]]) -> list[dict[str, Any]]:
        return list(self._call(_QUEUED, {"tags": tags})["runsOrError"].get("results") or [])

    def _launch_run(self, job: str, tags: list[dict[str, str]], assets: list[list[str]] | None = None) -> str:
        location, repository = self._job_location(job)
        selector: dict[str, Any] = {"repositoryLocationName": location, "repositoryName": repository, "jobName": job}
        if assets is not None:
            selector.update(assetSelection=[{"path": p} for p in assets], assetCheckSelection=[])
        params = {"selector": selector, "runConfigData": {}, "executionMetadata": {"tags": tags}}
        answer = self._call(_LAUNCH, {"executionParams": params})["launchRun"]
        if answer.get("__typename") != "LaunchRunSuccess":
            self._where.pop(job, None)  # a reloaded location may have moved the job
            raise LaunchError(f"{answer.get('__typename')}: {str(answer.get('message', ''))[:300]}")
        run_id = str(answer["run"]["runId"])
        self.launched.append(run_id)
        return run_id


class PushLauncher(_Launcher):
    """Asks the dagster-webserver at ``url`` for push runs, one company at a time, in the background.

    Args:
        url: the GraphQL endpoint (``.../graphql``).
        company_of: the company key of a tenant (``None``: not connected, nothing to launch).
    """

    what = "a push run"
    backstop = "the outbox sensor"

    def __init__(self, url: str, company_of: Any) -> None:
        super().__init__(url)
        self._company_of = company_of

    def records_enqueued(self, tenant: str) -> None:
        """Called after an enqueue committed: make sure a push run of the tenant's company comes."""
        self._want(tenant, set())

    def _launch(self, key: str, details: set[Any]) -> None:
        company = self._company_of(key)
        if company is None:
            return
        tags = [{"key": PUSH_TAG, "value": company}]
        if self._queued(tags):
            return  # a queued push reads the outbox when it starts: it takes these rows
        self._launch_run(PUSH_JOB_NAME, [*tags, {"key": "dagster/partition", "value": company},
                                                {"key": "qbo/trigger", "value": "api"}])


class LandingLauncher(_Launcher):
    """Asks the dagster-webserver at ``url`` for a company's incremental landing when webhooks arrive.

    Args:
        url: the GraphQL endpoint (``.../graphql``).
        companies_of: the connected company keys of a realm id.
        latest_seq: the inbox's latest sequence number (read after the events were stored).
    """

    what = "a webhook landing run"
    backstop = "qbo_webhook_sensor"

    def __init__(self, url: str, companies_of: Any, latest_seq: Any) -> None:
        super().__init__(url)
        self._companies_of = companies_of
        self._latest_seq = latest_seq

    def webhooks_stored(self, events: list[Any]) -> None:
        """Called after a delivery's events were stored: ask for a landing per company touched."""
        touched: dict[str, set[str]] = {}
        for event in events:
            entity = registry.find(str(getattr(event, "entity", "") or ""))
            realm = str(getattr(event, "realm_id", "") or "")
            if entity is not None and realm:
                touched.setdefault(realm, set()).add(entity.name)
        for realm, entities in touched.items():
            self._want(realm, entities)

    def _launch(self, key: str, details: set[Any]) -> None:
        through = int(self._latest_seq())
        for company in self._companies_of(key):
            if self._queued_landing_covers(company, details):
                continue  # a landing of those entities has not started: its CDC call comes after these events
            entities = sorted(details)
            tags = [{"key": COMPANY_TAG, "value": company}, {"key": "dagster/partition", "value": company},
                    {"key": "qbo/trigger", "value": "webhook"}, {"key": "qbo/entities", "value": ",".join(entities)},
                    {"key": PRIORITY_TAG, "value": str(URGENT_PRIORITY)}, {"key": THROUGH_TAG, "value": str(through)}]
            self._launch_run(LANDING_JOB_NAME, tags, [entity_asset_path(e) for e in entities])

    def _queued_landing_covers(self, company: str, entities: set[Any]) -> bool:
        for run in self._queued([{"key": COMPANY_TAG, "value": company}]):
            if run.get("jobName") != LANDING_JOB_NAME:
                continue
            tags = {t["key"]: t["value"] for t in run.get("tags") or []}
            named = set(filter(None, tags.get("qbo/entities", "").split(",")))
            if not named or entities <= named:  # no entity tag: the whole job (polling)
                return True
        return False
