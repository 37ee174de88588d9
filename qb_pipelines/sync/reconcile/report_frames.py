"""Reading QBO's reports as the report checks need them, whether fresh JSON or the flattened rows
read back from ``qbo_report_row`` (``sync.reports.flatten``'s shape)."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

from qb_pipelines.sync import reports as report_mod

# pandas is imported where it is used: every Dagster run's process loads this module with the
# code location, and most runs (pushes, landings) never touch a DataFrame.
if TYPE_CHECKING:
    import pandas as pd

#: A report as the checks accept it: QBO's JSON, or its flattened rows.
Report: TypeAlias = "dict | pd.DataFrame"


def as_frame(report: Report) -> pd.DataFrame:
    """The report's flattened rows."""
    import pandas as pd

    return report if isinstance(report, pd.DataFrame) else report_mod.flatten(report)


def header(report: Report) -> dict:
    """The report's header (``StartPeriod``/``EndPeriod``; a frame keeps them in ``attrs``)."""
    import pandas as pd

    if isinstance(report, pd.DataFrame):
        attrs = report.attrs
        return {"StartPeriod": attrs.get("start_period"), "EndPeriod": attrs.get("end_period")}
    return report_mod.unwrap(report).get("Header") or {}


def report_end(report: Report, df: pd.DataFrame) -> str:
    """The as-of date of a report: EndPeriod, report_date, or the value columns' last period end."""
    import pandas as pd

    head = header(report)
    if head.get("EndPeriod"):
        return str(head["EndPeriod"])
    for option in head.get("Option") or []:
        if option.get("Name") == "report_date" and option.get("Value"):
            return str(option["Value"])
    ends = [d for d in df["period_end"] if d is not None and not pd.isna(d)]
    if ends:
        return max(ends).isoformat()
    raise ValueError("the report has no end date (EndPeriod, report_date or column EndDate)")


def report_labels(df: pd.DataFrame) -> dict[str, str]:
    """The label of each id in the report (account or customer names), to name mismatches."""
    rows = df[df["account_id"].notna()]
    return {str(i): str(label) for i, label in zip(rows["account_id"], rows["label"], strict=True)}
