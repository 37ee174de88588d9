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


def post(tx: Tx, ent: EntityDef, body: dict) -> dict[int, int]:
    """Replace this transaction's ledger postings (voided ones post nothing).

    Returns:
        How much each account's ledger moved, in cents (accounts its old or new postings touch).
    """
    key = (tx.realm, ent.name, int(body["Id"]))
    moved: dict[int, int] = {}
    for account_id, amount in tx.conn.execute(
            "SELECT account_id, amount FROM postings WHERE realm=? AND entity=? AND txn_id=?", key):
        moved[account_id] = moved.get(account_id, 0) - round(amount * 100)
    tx.conn.execute("DELETE FROM postings WHERE realm=? AND entity=? AND txn_id=?", key)
    if is_voided(body):
        return moved
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
    for p in postings:
        moved[p.account_id] = moved.get(p.account_id, 0) + round(p.amount * 100)
    return moved


def unpost(tx: Tx, ent: EntityDef, txn_id: str) -> None:
    """Take a deleted transaction out of the books."""
    tx.conn.execute("DELETE FROM postings WHERE realm=? AND entity=? AND txn_id=?", (tx.realm, ent.name, int(txn_id)))


def _set_balance(tx: Tx, acc: dict, bal: float) -> None:
    if acc.get("CurrentBalance") != bal:
        acc["CurrentBalance"] = bal
        acc["CurrentBalanceWithSubAccounts"] = bal
        tx.rewrite("Account", acc)


def _sign(acc: dict) -> int:
    return chart.DEBIT_NORMAL.get(acc.get("Classification", "Asset"), 1)


def refresh_accounts(tx: Tx) -> None:
    """Account.CurrentBalance follows the ledger (natural sign of the classification): every account."""
    sums = dict(tx.conn.execute("SELECT account_id, SUM(amount) FROM postings WHERE realm=? GROUP BY account_id",
                                (tx.realm,)).fetchall())
    for _, acc in tx.live("Account"):
        _set_balance(tx, acc, money(_sign(acc) * sums.get(int(acc["Id"]), 0.0)))
    tx.db.kv_set(_rederive_key(tx), [])


# Every account follows the ledger after each transaction write. A write moves a few accounts
# by the amounts it posts (:func:`move_accounts`: a company of many thousand invoices must not
# sum its whole ledger for each new one); an account's own write (a balance typed in, another
# classification) or a merge re-posting transactions leaves accounts to derive again from the
# ledger at the next transaction write (:func:`rederive_later`), kept with the company's data.

def _rederive_key(tx: Tx) -> str:
    return f"accounts_to_rederive/{tx.realm}"


def rederive_later(tx: Tx, account_ids: Iterable[int | str]) -> None:
    """Derive these accounts' balances from the ledger at the next transaction write (this one's tx)."""
    wanted = {int(a) for a in account_ids}
    if wanted:
        pending = {int(a) for a in tx.db.kv_get(_rederive_key(tx), []) or []}
        if not wanted <= pending:
            tx.db.kv_set(_rederive_key(tx), sorted(pending | wanted))


def move_accounts(tx: Tx, moved: dict[int, int]) -> None:
    """After a transaction write: each account's balance moves by its ledger's move (``moved``, cents).

    The same figures as summing the ledger (:func:`refresh_accounts`): postings are whole cents, so
    the stored balance plus the move is exact.
    """
    pending = {int(a) for a in tx.db.kv_get(_rederive_key(tx), []) or []}
    if pending:
        tx.db.kv_set(_rederive_key(tx), [])
    for account_id in sorted(pending | {a for a, cents in moved.items() if cents}):
        acc = tx.get("Account", account_id)
        if acc is None:
            continue
        current = acc.get("CurrentBalance")
        if account_id in pending or not isinstance(current, int | float):
            (total,) = tx.conn.execute("SELECT SUM(amount) FROM postings WHERE realm=? AND account_id=?",
                                       (tx.realm, account_id)).fetchone()
            _set_balance(tx, acc, money(_sign(acc) * (total or 0.0)))
        else:
            _set_balance(tx, acc, (round(current * 100) + _sign(acc) * moved[account_id]) / 100)


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

