"""Fieldwise: a small field-service app that integrates with QuickBooks through qb_pipelines.

It is the reference for an app's side of the integration, and uses **only the public contract**
(an import-linter contract forbids importing anything else of ``qb_pipelines``):

* it **pushes** whole records (customers and jobs, items, invoices, estimates) to the records API
  with the tenant's API key (:mod:`~qb_pipelines.reference_app.client`), after writing them to its
  own SQLite database (:mod:`~qb_pipelines.reference_app.db`);
* it **hears back** through the change feed, polled, or through the signed callback
  (:mod:`~qb_pipelines.reference_app.feed`): payments mark invoices paid, customer edits made in
  QuickBooks update its records, customers born in QuickBooks are linked with ``"qbo_id"``;
* its pages (:mod:`~qb_pipelines.reference_app.pages`) show each record's sync status as the
  records API reports it.

Run it with ``qb-pipelines reference-app serve`` (:mod:`~qb_pipelines.reference_app.app`).
"""

from qb_pipelines.reference_app.app import Config, ConfigError, create_app

__all__ = ["Config", "ConfigError", "create_app"]
