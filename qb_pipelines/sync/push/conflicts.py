"""The three-way decision when both the app and QuickBooks changed one record.

A mapping remembers what both sides last agreed on, as two snapshots in the app's vocabulary:
``agreed["app"]`` (the app's record as last pushed) and ``agreed["qbo"]`` (QuickBooks' object as
it stood after that push, read back). Each side is compared with its *own* snapshot, so values
QuickBooks derives (a due date from terms, a line's taxability from its item) never look like a
change the app made:

* a field only the app changed goes to QuickBooks;
* a field only QuickBooks changed stays as QuickBooks has it (a sparse update leaves it alone);
* a field both changed to the same value is agreed already;
* a field both changed to different values is a **conflict**, and the tenant's policy decides:
  ``app_wins`` (the app's value is written, with QBO's fresh SyncToken), ``qbo_wins`` (QBO's value
  stays; the app's change of that field is dropped and the record says so), ``manual_review``
  (nothing is written; the record waits with the agreed, app and QBO values of each field).

Changes to different fields on the two sides therefore merge without asking. A record linked by
a match has no agreement yet: the app's values fill the fields QuickBooks left blank, and a field
both sides filled differently is a conflict.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from qb_pipelines.sync.push.from_qbo import comparable

__all__ = ["APP_WINS", "MANUAL_REVIEW", "POLICIES", "QBO_WINS", "Decision", "decide"]

APP_WINS = "app_wins"
QBO_WINS = "qbo_wins"
MANUAL_REVIEW = "manual_review"
POLICIES = (APP_WINS, QBO_WINS, MANUAL_REVIEW)


@dataclass
class Decision:
    """What to do with one record.

    Attributes:
        send: app fields to write to QuickBooks now.
        kept_qbo: conflicting fields where QuickBooks' value stays (policy QBO wins).
        conflicts: conflicting fields, each with its ``agreed``, ``app`` and ``qbo`` values.
        review: the record waits for an admin (manual review with conflicts).
    """

    send: set[str] = field(default_factory=set)
    kept_qbo: set[str] = field(default_factory=set)
    conflicts: dict[str, dict[str, Any]] = field(default_factory=dict)
    review: bool = False

    @property
    def dropped(self) -> bool:
        """The app's change had nothing left to send: every field it changed kept QBO's value."""
        return not self.review and not self.send and bool(self.kept_qbo)

    def review_payload(self) -> dict[str, Any]:
        """What the review queue stores and shows."""
        return {"kind": "conflict", "fields": self.conflicts}


def _same(a: Any, b: Any) -> bool:
    return comparable(a) == comparable(b)


def decide(fields: Iterable[str], agreed: Mapping[str, Any] | None, app: Mapping[str, Any],
           qbo: Mapping[str, Any], policy: str) -> Decision:
    """Decide field by field (see the module doc).

    Args:
        fields: the entity's app fields (the contract's properties).
        agreed: the mapping's ``{"app": {...}, "qbo": {...}}`` snapshots, ``None`` when the
            record was just linked by a match (no agreement yet).
        app: the app's record now.
        qbo: QuickBooks' object now, in the app's vocabulary.
        policy: ``app_wins``, ``qbo_wins`` or ``manual_review``.
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown conflict policy {policy!r}")
    agreed_app = (agreed or {}).get("app") or {}
    agreed_qbo = (agreed or {}).get("qbo") or {}
    decision = Decision()
    for name in fields:
        if agreed is None:
            # just linked: the app's values fill QuickBooks' blanks; both filled and different
            # is a conflict; a blank in the app leaves QuickBooks' value alone
            app_changed = comparable(app.get(name)) is not None and not _same(app.get(name), qbo.get(name))
            qbo_changed = comparable(qbo.get(name)) is not None
        else:
            app_changed = not _same(app.get(name), agreed_app.get(name))
            qbo_changed = not _same(qbo.get(name), agreed_qbo.get(name))
        if not app_changed:
            continue
        if not qbo_changed or _same(app.get(name), qbo.get(name)):
            if not _same(app.get(name), qbo.get(name)):
                decision.send.add(name)
            continue
        decision.conflicts[name] = {"agreed": agreed_app.get(name) if agreed is not None else None,
                                    "app": app.get(name), "qbo": qbo.get(name)}
    if decision.conflicts:
        if policy == APP_WINS:
            decision.send |= set(decision.conflicts)
        elif policy == QBO_WINS:
            decision.kept_qbo |= set(decision.conflicts)
        else:
            decision.review = True
            decision.send = set()
    return decision
