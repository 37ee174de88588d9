"""Property names: QBO matches them case-insensitively, the stored JSON paths are case-sensitive.

:data:`NAMES` resolves a property as written to its path, from the registry's typed fields,
common fields, and paths learned from stored bodies (per realm and entity). May read the
``objects`` table; holds the learned paths and a small cache of misses (4001 faults).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

import orjson

from qb_pipelines.emulator import faults
from qb_pipelines.qbo import registry
from qb_pipelines.qbo.registry import EntityDef

if TYPE_CHECKING:
    from qb_pipelines.emulator.core import Emulator


_COMMON_FIELDS = (
    "Id", "SyncToken", "MetaData", "MetaData.CreateTime", "MetaData.LastUpdatedTime", "Active",
    "Name", "DisplayName", "GivenName", "FamilyName", "MiddleName", "CompanyName", "Title",
    "FullyQualifiedName", "PrintOnCheckName", "PrimaryEmailAddr", "PrimaryEmailAddr.Address",
    "PrimaryPhone", "PrimaryPhone.FreeFormNumber", "Job", "ParentRef", "Level", "Balance",
    "BalanceWithJobs", "Taxable", "Sku", "Type", "Description", "UnitPrice", "PurchaseCost",
    "QtyOnHand", "TrackQtyOnHand", "DocNumber", "TxnDate", "DueDate", "TotalAmt", "PrivateNote",
    "CustomerRef", "VendorRef", "EmployeeRef", "ItemRef", "AccountRef", "ClassRef", "DepartmentRef",
    "CurrencyRef", "SalesTermRef", "TermRef", "DepositToAccountRef", "PaymentMethodRef",
    "AccountType", "AccountSubType", "Classification", "AcctNum", "CurrentBalance", "EmailStatus",
    "PrintStatus", "TxnStatus", "PaymentType", "PayType", "Credit", "DueDays", "RateValue",
    "UnappliedAmt", "RemainingCredit", "ExpirationDate", "Hours", "Minutes", "NameOf",
    "BillableStatus", "Adjustment", "PaymentRefNum", "CustomerMemo", "BillEmail", "ShipDate",
)


def _static_names() -> dict[str, str]:
    names: dict[str, str] = {}
    for entity in registry.ENTITIES:
        for path in entity.typed_fields:
            names.setdefault(path.lower(), path)
            head = path.split(".")[0]
            names.setdefault(head.lower(), head)
    for path in _COMMON_FIELDS:
        names[path.lower()] = path
    # "Metadata" is a spelling clients send; the body key is always "MetaData".
    return names


_STATIC_NAMES = _static_names()


def _collect_paths(obj: dict, prefix: str, out: dict[str, str], depth: int = 0) -> None:
    for key, val in obj.items():
        path = f"{prefix}{key}"
        out.setdefault(path.lower(), path)
        if isinstance(val, dict) and depth < 2:
            _collect_paths(val, path + ".", out, depth + 1)


class _PropertyNames:
    """Learned, case-preserving property paths per (realm, entity), grown from stored bodies."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.learned: dict[tuple[str, str], dict[str, str]] = {}
        # (realm, entity, property, db version) already searched for in vain: a client that
        # repeats a faulting query must not rescan a large table every time.
        self.missing: OrderedDict[tuple, bool] = OrderedDict()

    def resolve(self, emu: Emulator, realm: str, entity: EntityDef, prop: str) -> str:
        """The canonical dotted path for ``prop`` (any case) on ``entity``.

        Raises:
            QBOFault: 4001 when the entity has rows and none carries the property.
        """
        low = prop.lower()
        found = _STATIC_NAMES.get(low)
        if found:
            return found
        key = (realm, entity.name)
        with self.lock:
            learned = self.learned.get(key)
        if learned and low in learned:
            return learned[low]
        version = getattr(emu.db, "version", 0)
        with self.lock:
            if (realm, entity.name, low, version) in self.missing:
                raise faults.query_invalid(
                    f"QueryValidationError: Property {prop} not found for Entity {entity.name}")
        # Unknown so far: find a row that carries the last segment (any case), learn its paths.
        last = low.rsplit(".", 1)[-1]
        with emu.db.read() as conn:
            row = conn.execute(
                "SELECT body FROM objects WHERE realm=? AND entity=? AND IFNULL(status,'')<>'Deleted' "
                "AND instr(lower(CAST(body AS TEXT)), ?) > 0 LIMIT 1",
                (realm, entity.name, f'"{last}":'),
            ).fetchone()
            any_row = row is not None or conn.execute(
                "SELECT 1 FROM objects WHERE realm=? AND entity=? LIMIT 1", (realm, entity.name)
            ).fetchone() is not None
        if row is not None:
            paths: dict[str, str] = {}
            _collect_paths(orjson.loads(row[0]), "", paths)
            with self.lock:
                self.learned.setdefault(key, {}).update(paths)
            if low in paths:
                return paths[low]
        if any_row:
            with self.lock:
                self.missing[(realm, entity.name, low, version)] = True
                while len(self.missing) > 256:
                    self.missing.popitem(last=False)
            raise faults.query_invalid(f"QueryValidationError: Property {prop} not found for Entity {entity.name}")
        # Nothing stored yet: the filter matches nothing whatever it names.
        return prop


NAMES = _PropertyNames()
