"""The books behind the balances: ledger postings, account balances, party balances from the sub-ledgers.

Every transaction's postings are replaced when it is written (``ledger.postings``); accounts'
``CurrentBalance`` follows the ledger; a party's ``Balance`` can always be derived from its share
of its control account (A/R for customers, A/P for vendors), which bulk seeding and merges use.
"""

from __future__ import annotations

from collections.abc import Iterable

from qb_pipelines.emulator import chart, entities, faults, ledger
from qb_pipelines.emulator.engine.store import Tx
from qb_pipelines.emulator.engine.values import is_voided, money, ref_value
from qb_pipelines.qbo.registry import EntityDef

_MAX_ANCESTORS = 5


def post(tx: Tx, ent: EntityDef, body: dict) -> set[int]:
    """Replace this transaction's ledger postings (voided ones post nothing).

    Returns:
        The accounts its old and new postings touch (whose balances may have moved).
    """
    key = (tx.realm, ent.name, int(body["Id"]))
    touched = {row[0] for row in tx.conn.execute(
        "SELECT DISTINCT account_id FROM postings WHERE realm=? AND entity=? AND txn_id=?", key)}
    tx.conn.execute("DELETE FROM postings WHERE realm=? AND entity=? AND txn_id=?", key)
    if is_voided(body):
        return touched
    try:
        postings = ledger.postings(ent.name, body, tx.get)
    except ledger.UnbalancedTransaction as exc:
        raise faults.business(f"Transaction must be balanced: {exc}") from exc
    date = body.get("TxnDate") or tx.today()
    tx.conn.executemany(
        "INSERT INTO postings(realm, entity, txn_id, seq, txn_date, account_id, amount, customer_id, vendor_id)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(tx.realm, ent.name, int(body["Id"]), n, date, p.account_id, p.amount, p.customer_id, p.vendor_id)
         for n, p in enumerate(postings)],
    )
    return touched | {p.account_id for p in postings}


def unpost(tx: Tx, ent: EntityDef, txn_id: str) -> None:
    """Take a deleted transaction out of the books."""
    tx.conn.execute("DELETE FROM postings WHERE realm=? AND entity=? AND txn_id=?", (tx.realm, ent.name, int(txn_id)))


def refresh_accounts(tx: Tx, account_ids: Iterable[int] | None = None) -> None:
    """Account.CurrentBalance follows the ledger (natural sign of the classification).

    Args:
        account_ids: only these accounts (the ones a transaction's postings moved: a write then
            reads a handful of sums through the covering index instead of aggregating the whole
            ledger); every account when ``None``.
    """
    if account_ids is None:
        sums = dict(tx.conn.execute("SELECT account_id, SUM(amount) FROM postings WHERE realm=? GROUP BY account_id",
                                    (tx.realm,)).fetchall())
        accounts: Iterable[dict] = (acc for _, acc in tx.live("Account"))
    else:
        wanted = sorted({int(a) for a in account_ids})
        if not wanted:
            return
        sums = dict(tx.conn.execute(
            f"SELECT account_id, SUM(amount) FROM postings WHERE realm=? AND account_id IN ({','.join('?' * len(wanted))})"
            " GROUP BY account_id", (tx.realm, *wanted)).fetchall())
        accounts = (acc for acc in (tx.get("Account", a) for a in wanted) if acc is not None)
    for acc in accounts:
        sign = chart.DEBIT_NORMAL.get(acc.get("Classification", "Asset"), 1)
        bal = money(sign * sums.get(int(acc["Id"]), 0.0))
        if acc.get("CurrentBalance") != bal:
            acc["CurrentBalance"] = bal
            acc["CurrentBalanceWithSubAccounts"] = bal
            tx.rewrite("Account", acc)


def recompute_party_balances(tx: Tx, holder: EntityDef, *, touch: bool = False) -> list[dict]:
    """Derive every Balance of one balance holder from its control account's postings.

    A customer's ``BalanceWithJobs`` adds its descendants' balances. With ``touch`` (a merge), the
    objects whose balances changed get LastUpdatedTime now, so CDC returns them; bulk seeding
    leaves the times it wrote.

    Returns:
        The bodies whose balances changed.
    """
    column = entities.postings_column(holder.name)
    control = entities.control_accounts()[holder.name]
    control_ids = [obj_id for obj_id, acc in tx.live("Account") if acc.get("AccountType") == control]
    sign = chart.DEBIT_NORMAL[chart.classification(control)]
    sums: dict[int, float] = {}
    if control_ids:
        marks = ",".join("?" * len(control_ids))
        sums = {row[0]: row[1] for row in tx.conn.execute(
            f"SELECT {column}, SUM(amount) FROM postings WHERE realm=? AND account_id IN ({marks}) "
            f"AND {column} IS NOT NULL GROUP BY {column}", (tx.realm, *control_ids))}
    balance = holder.balance_field or "Balance"
    nodes = dict(tx.live(holder.name))
    before = {i: (n.get(balance), n.get("BalanceWithJobs")) for i, n in nodes.items()}
    for node_id, node in nodes.items():
        node[balance] = money(sign * sums.get(node_id, 0.0))
    if holder.hierarchical:
        with_jobs = {i: n[balance] for i, n in nodes.items()}
        for node in nodes.values():
            parent = ref_value(node.get("ParentRef"))
            for _ in range(_MAX_ANCESTORS):
                if not parent or int(parent) not in nodes:
                    break
                with_jobs[int(parent)] += node[balance]
                parent = ref_value(nodes[int(parent)].get("ParentRef"))
        for node_id, node in nodes.items():
            node["BalanceWithJobs"] = money(with_jobs[node_id])
    changed = [n for i, n in nodes.items() if (n.get(balance), n.get("BalanceWithJobs")) != before[i]]
    for node in changed:
        if touch:
            tx.touch(holder.name, node, bump_token=False)  # only balances moved (§7.2)
        else:
            tx.rewrite(holder.name, node)
    return changed


def recompute_all(tx: Tx) -> None:
    """Every balance holder's balances and every account's, from the ledger."""
    for holder in entities.balance_holders():
        recompute_party_balances(tx, holder)
    refresh_accounts(tx)

