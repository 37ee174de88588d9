"""The Dagster code location: every definition under ``qb_pipelines/defs/``.

Definitions are autoloaded from the ``defs`` package (Dagster's recommended layout since 1.11):
a new file of assets, checks, sensors or schedules there is picked up without touching this
module, and resources come from ``@dg.definitions`` functions in that folder. Nothing here reads
the environment; resources resolve their configuration when a run starts.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import dagster as dg

import qb_pipelines.defs
from qb_pipelines.qbo.redact import install_redaction


def build_defs() -> dg.Definitions:
    """Autoload every definition in ``qb_pipelines.defs`` into one ``Definitions``.

    Every process that loads the code location (the webserver's code server, the daemon, each run)
    also gets the token redaction on its log records, ``context.log`` included.
    """
    install_redaction("dagster", "qb_pipelines")
    # ComponentTree.from_module rather than load_from_defs_folder: the latter needs a ``[tool.dg]``
    # section in pyproject.toml to find the defs module; this names it directly. The autoloader
    # calls Dagster-internal preview functions; load_from_defs_folder silences those warnings
    # the same way, so users never see warnings about code they did not write.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        warnings.simplefilter("ignore", dg.BetaWarning)
        return dg.ComponentTree.from_module(
            defs_module=qb_pipelines.defs,
            project_root=Path(__file__).resolve().parent.parent,
        ).build_defs()


defs: dg.Definitions = build_defs()
