"""Driving a real Dagster instance's run queue from a test: submit runs, run one pass of the queue.

The instance is real (its run coordinator and concurrency configuration as written); only its
run launcher is :class:`RecordingRunLauncher`, which records the runs the queue launches instead
of starting their processes, so a test sees the queue's decisions (what is launched, in what order).
"""

from __future__ import annotations

from typing import Any

import dagster as dg
from dagster._core.launcher import LaunchRunContext, RunLauncher
from dagster._serdes import ConfigurableClass, ConfigurableClassData

#: The code location runs are said to come from (the queue only reads its name).
LOCATION = "qb_pipelines.definitions"
#: Append to an instance's ``dagster.yaml``: launches are recorded, not executed.
RECORDING_LAUNCHER = "run_launcher:\n  module: qb_pipelines_tests.run_queue\n  class: RecordingRunLauncher\n"


class RecordingRunLauncher(RunLauncher, ConfigurableClass):
    """A run launcher that records what it is asked to launch, in order, and starts nothing."""

    def __init__(self, inst_data: ConfigurableClassData | None = None) -> None:
        self._inst_data = inst_data
        self.launched: list[dg.DagsterRun] = []
        super().__init__()

    @property
    def inst_data(self) -> ConfigurableClassData | None:
        return self._inst_data

    @classmethod
    def config_type(cls) -> dict[str, Any]:
        return {}

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData, config_value: Any) -> RecordingRunLauncher:
        return cls(inst_data=inst_data)

    def launch_run(self, context: LaunchRunContext) -> None:
        self.launched.append(context.dagster_run)

    def terminate(self, run_id: str) -> bool:
        return False


def submit_run(instance: dg.DagsterInstance, job: str, tags: dict[str, str],
               assets: set[dg.AssetKey] | None = None) -> dg.DagsterRun:
    """Store a run and hand it to the instance's run coordinator, as the UI, a sensor or a backfill does."""
    from dagster._core.remote_origin import RegisteredCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin

    origin = RemoteJobOrigin(RemoteRepositoryOrigin(RegisteredCodeLocationOrigin(LOCATION), "__repository__"), job)
    run = instance.add_run(dg.DagsterRun(job_name=job, tags=tags, status=dg.DagsterRunStatus.NOT_STARTED,
                                         asset_selection=frozenset(assets) if assets else None,
                                         remote_job_origin=origin))
    return instance.run_coordinator.submit_run(dg.SubmitRunContext(run, workspace=None))  # type: ignore[arg-type]


def dequeue_runs(instance: dg.DagsterInstance) -> list[str]:
    """One pass of the daemon's run queue (Dagster's own), returning the run ids it launched, in order."""
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import EmptyWorkspaceTarget
    from dagster._daemon.controller import create_daemon_grpc_server_registry
    from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon

    launcher = instance.run_launcher
    assert isinstance(launcher, RecordingRunLauncher)
    before = len(launcher.launched)
    with create_daemon_grpc_server_registry(instance) as registry, \
            WorkspaceProcessContext(instance, EmptyWorkspaceTarget(), grpc_server_registry=registry) as context:
        list(QueuedRunCoordinatorDaemon(interval_seconds=1).run_iteration(context))
    return [run.run_id for run in launcher.launched[before:]]


def finish_run(instance: dg.DagsterInstance, run: dg.DagsterRun) -> None:
    """Record that a launched run succeeded (its run slot and its tags' limits are free again)."""
    from dagster._core.events import DagsterEvent, DagsterEventType

    instance.report_dagster_event(DagsterEvent(event_type_value=DagsterEventType.RUN_SUCCESS.value,
                                               job_name=run.job_name), run_id=run.run_id)
