"""What the pipeline knows about QuickBooks: the entity catalog and the emulator's companies.

Both assets record what they found as materialization metadata (no I/O manager, no stored
value): the entity catalog is the registry the landing assets are built from, shown where data
engineers look; the companies asset shows which QuickBooks companies the emulator offers to
connect, so a demo user can see at a glance that QuickBooks is up.
"""

import dagster as dg

from qb_pipelines.defs.resources import QBOEmulatorResource
from qb_pipelines.qbo import registry

META_GROUP = "qbo_meta"


def _catalog_records() -> list[dg.TableRecord]:
    return [
        dg.TableRecord(
            {
                "entity": e.name,
                "kind": e.kind.value,
                "cdc": e.cdc,
                "webhook": e.webhook,
                "writable": e.writable,
                "pushed": e.push,
                "void": e.void.value,
                "line_tables": ", ".join(e.line_fields),
                "depends_on": ", ".join(e.depends_on),
            }
        )
        for e in registry.ENTITIES
    ]


_CATALOG_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("entity", "string", description="QBO entity name"),
        dg.TableColumn("kind", "string", description="name_list, transaction or singleton"),
        dg.TableColumn("cdc", "bool", description="returned by QBO change data capture"),
        dg.TableColumn("webhook", "bool", description="reported by QBO webhooks"),
        dg.TableColumn("writable", "bool", description="QBO accepts create and update"),
        dg.TableColumn("pushed", "bool", description="the app pushes it to QBO"),
        dg.TableColumn("void", "string", description="how a transaction is voided"),
        dg.TableColumn("line_tables", "string", description="child collections landed as line tables"),
        dg.TableColumn("depends_on", "string", description="entities it references"),
    ]
)


@dg.asset(
    key=["qbo", "entity_catalog"],
    group_name=META_GROUP,
    kinds={"python"},
    code_version=str(len(registry.ENTITIES)),
    description="The QuickBooks entities this project lands and pushes, from the entity registry.",
)
def qbo_entity_catalog() -> dg.MaterializeResult:
    """Publish the entity registry: every QBO entity, its kind, CDC and webhook support, push order.

    This is the list the per-entity landing assets, warehouse tables and push order are derived
    from; seeing it in the UI answers "which QuickBooks objects does this pipeline cover?".
    """
    entities = registry.ENTITIES
    return dg.MaterializeResult(
        metadata={
            "entities": dg.MetadataValue.table(_catalog_records(), schema=_CATALOG_SCHEMA),
            "entity_count": len(entities),
            "transactions": sum(e.is_transaction for e in entities),
            "name_lists": sum(e.is_name_list for e in entities),
            "cdc_entities": len(registry.cdc_entities()),
            "push_order": " -> ".join(e.name for e in registry.push_order()),
        }
    )


@dg.asset(
    key=["qbo", "emulator_companies"],
    group_name=META_GROUP,
    kinds={"python"},
    description="The companies the QBO emulator holds (realmId and name), read from its control API.",
)
def qbo_emulator_companies(context: dg.AssetExecutionContext, qbo_emulator: QBOEmulatorResource) -> dg.MaterializeResult:
    """List the QuickBooks companies the emulator offers, so they can be connected and landed.

    Fails (with the command that starts one) when no emulator answers.
    """
    companies = qbo_emulator.companies()
    context.log.info("emulator at %s holds %d companies", qbo_emulator.resolved_url(), len(companies))
    records = [dg.TableRecord({"realmId": str(c.get("realmId", "")), "name": str(c.get("name", ""))}) for c in companies]
    return dg.MaterializeResult(
        metadata={
            "emulator_url": dg.MetadataValue.url(qbo_emulator.resolved_url()),
            "company_count": len(companies),
            "companies": dg.MetadataValue.table(
                records,
                schema=dg.TableSchema(
                    columns=[dg.TableColumn("realmId", "string"), dg.TableColumn("name", "string")]
                ),
            ),
        }
    )
