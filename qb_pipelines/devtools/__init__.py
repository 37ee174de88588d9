"""Developer tooling: the processes the demo, the benchmarks and the tests start, and their ports.

Tooling, not product: only the command line, the demo, the benchmarks and the tests import it.

* :mod:`~qb_pipelines.devtools.ports`: free ports, and whether a port is taken.
* :mod:`~qb_pipelines.devtools.signals`: SIGTERM stops a command exactly as Ctrl-C does, and a
  cleanup in progress is not cut short by a second signal.
* :mod:`~qb_pipelines.devtools.processes`: :class:`SupervisedProcess`, a child process in its
  own session whose whole tree is stopped (gracefully, then killed at a deadline) when it ends.
* :mod:`~qb_pipelines.devtools.services`: the project's services as supervised children: the
  emulator, the admin web app, ``dagster dev`` and ``dagster-daemon``, each started and waited
  for until it answers.
"""
