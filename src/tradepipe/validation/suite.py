"""The Great Expectations suite on canonical bars and the ephemeral context that runs it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import great_expectations as gx
import great_expectations.expectations as gxe
from great_expectations.checkpoint import UpdateDataDocsAction
from great_expectations.core import ExpectationSuiteValidationResult
from great_expectations.data_context import AbstractDataContext
from great_expectations.data_context.types.base import ProgressBarsConfig
from great_expectations.expectations import Expectation

from tradepipe.config import ValidateParams
from tradepipe.core.schema import REQUIRED
from tradepipe.validation.derived import DTYPES, Batch

_PRICES = ("open", "high", "low", "close")
_DOCS_SITE = "tradepipe"


def build_expectations(batch: Batch, params: ValidateParams) -> list[Expectation]:
    """The expectations for this batch: value checks only on columns present with the right dtype."""
    present = [c for c in DTYPES if c in batch.frame.columns]
    typed = batch.typed
    exps: list[Expectation] = [
        gxe.ExpectTableRowCountToBeBetween(
            min_value=1, notes="the data holds no bars: check the source, symbols and date range"
        )
    ]
    exps += [
        gxe.ExpectColumnToExist(
            column=c, notes=f"add the required column {c!r} (canonical bars need {', '.join(REQUIRED)})"
        )
        for c in REQUIRED
    ]
    exps += [
        gxe.ExpectColumnTypeToBe(
            column=c, type_=DTYPES[c], notes=f"convert column {c!r} to {DTYPES[c]}"
        )
        for c in present
    ]
    exps += [
        gxe.ExpectColumnValuesToNotBeNull(
            column=c, notes=f"fill or drop the bars with a missing {c}; do not forward-fill prices silently"
        )
        for c in present
    ]
    exps += [
        gxe.ExpectColumnValuesToBeBetween(
            column=c, min_value=0, strict_min=True,
            notes=(f"{c} must be > 0: fix or drop these bars (bad print, missing value coded as 0 or -1)"),
        )
        for c in _PRICES if c in typed
    ]
    if "volume" in typed:
        exps.append(gxe.ExpectColumnValuesToBeBetween(
            column="volume", min_value=0, notes="volume must be >= 0: fix or drop these bars"
        ))
    for a, b in (("high", "open"), ("high", "close"), ("open", "low"), ("close", "low")):
        if {a, b} <= typed:
            exps.append(gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A=a, column_B=b, or_equal=True,
                notes=(f"{a} must be >= {b}: high/low swapped or from another bar; fix the source"),
            ))
    if {"timestamp", "symbol"} <= set(present):
        exps.append(gxe.ExpectCompoundColumnsToBeUnique(
            column_list=["timestamp", "symbol"],
            notes=("each (timestamp, symbol) must appear once: drop the duplicate bars"),
        ))
    flag = params.return_flag_column
    if flag and flag in batch.frame.columns:
        exps.append(gxe.ExpectColumnTypeToBe(
            column=flag, type_="bool",
            notes=f"validate.return_flag_column {flag!r} must hold booleans (true: a known large move)"))
    exps += _derived_expectations(batch.frame.columns, params)
    return exps


def _derived_expectations(columns: Sequence[str], params: ValidateParams) -> list[Expectation]:
    bounds: dict[str, tuple[float | None, float | None, str]] = {
        "rows_per_symbol": (params.min_rows_per_symbol, None,
                            f"fewer than min_rows_per_symbol={params.min_rows_per_symbol} bars: "
                            "drop the symbol or widen the date range"),
        "timestamp_step_days": (0, None, "timestamps go back in time within the symbol: sort the bars "
                                "by symbol and timestamp"),
        "out_of_order": (None, 0, "rows must be sorted by timestamp, then symbol (the canonical order): "
                         "this row sorts before the previous one; sort the bars"),
        "gap_sessions": (None, params.max_gap_sessions,
                         f"more than max_gap_sessions={params.max_gap_sessions} sessions of the universe "
                         "(timestamps at which any symbol has a bar) are missing between the symbol's bar at "
                         "gap_from and this one: fill the missing bars from the source or raise max_gap_sessions"),
        "abs_return": (None, params.max_abs_return,
                       f"one-bar move beyond max_abs_return={params.max_abs_return}: check for a bad "
                       "print or an unadjusted split; fix the price, raise max_abs_return, or flag a real move "
                       f"in a boolean column {params.return_flag_column or '(validate.return_flag_column)'}"),
        "stale_run": (None, params.max_stale_run,
                      f"close unchanged for more than max_stale_run={params.max_stale_run} bars in a "
                      "row: the feed may be frozen or forward-filled; re-fetch these bars"),
    }
    return [
        gxe.ExpectColumnValuesToBeBetween(column=c, min_value=lo, max_value=hi, notes=hint)
        for c, (lo, hi, hint) in bounds.items() if c in columns
    ]


def _context(
    name: str, docs_dir: Path | None
) -> tuple[AbstractDataContext, gx.ValidationDefinition, gx.ExpectationSuite]:
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    if docs_dir is not None:
        context.add_data_docs_site(site_name=_DOCS_SITE, site_config={
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        })
    asset = context.data_sources.add_pandas(name).add_dataframe_asset(name)
    batch_definition = asset.add_batch_definition_whole_dataframe(name)
    suite = context.suites.add(gx.ExpectationSuite(name=f"{name}_canonical_bars"))
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{name}_validation", data=batch_definition, suite=suite)
    )
    return context, definition, suite


def run_suite(batch: Batch, params: ValidateParams, name: str) -> ExpectationSuiteValidationResult:
    """Validate the batch with GX and return the complete result (every offending row's index)."""
    _, definition, suite = _context(name, None)
    for expectation in build_expectations(batch, params):
        suite.add_expectation(expectation)
    return definition.run(
        batch_parameters={"dataframe": batch.frame}, result_format={"result_format": "COMPLETE"}
    )


def build_docs(batch: Batch, params: ValidateParams, name: str, out_dir: Path) -> Path:
    """Run the suite through a checkpoint that renders GX Data Docs into out_dir; return index.html."""
    context, definition, suite = _context(name, out_dir)
    for expectation in build_expectations(batch, params):
        suite.add_expectation(expectation)
    checkpoint = context.checkpoints.add(gx.Checkpoint(
        name=f"{name}_checkpoint", validation_definitions=[definition],
        actions=[UpdateDataDocsAction(name="data_docs", site_names=[_DOCS_SITE])],
        result_format={"result_format": "SUMMARY"},
    ))
    checkpoint.run(batch_parameters={"dataframe": batch.frame})
    return out_dir / "index.html"

