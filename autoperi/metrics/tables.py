"""The comparison table of the evaluation: reference rows, models and (labelled) published rows of one dataset.

Measured rows come from `reports/metrics/<dataset>/<model>.json` (the schema `evaluate_samples` writes); published
rows from `autoperi.metrics.published`, only where the test set is the published one. A value not computed (null in
the JSON, or a column the paper does not report) is NaN, shown as "—" by `format_table`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from autoperi.metrics.published import COMPARABLE_DATASET, NOT_COMPARABLE_DATASET, published_table

METRIC_COLUMNS = (
    "struct_validity",
    "comp_validity",
    "cov_recall",
    "cov_precision",
    "wdist_density",
    "wdist_num_elems",
    "wdist_formation_energy",
    "uniqueness",
    "novelty",
    "composition_coverage",
    "frechet_props",
    "frechet_embedding",
)
STABILITY_COLUMNS = ("n_relaxed", "relax_success", "rmsd_mean", "stable_0_1", "stable_0_0", "sun")
PERCENT_COLUMNS = {"struct_validity", "comp_validity", "cov_recall", "cov_precision", "uniqueness", "novelty",
                   "composition_coverage", "relax_success", "stable_0_1", "stable_0_0", "sun"}  # fmt: skip
REFERENCE_ROWS = ("oracle", "memorization", "random")
FIRST_MODELS = ("autoperi",)
MEASURED = "measured here"


def read_metrics(path: str | Path) -> dict:
    """One metrics JSON; a clear error naming the file when it is not valid JSON or lacks `model`."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or "model" not in data:
        raise ValueError(f"{path}: not a metrics file (no 'model' key)")
    return data


def _number(value) -> float:
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value)


def _row(data: dict) -> dict:
    stability = data.get("stability") or {}
    row = {key: _number(data.get(key)) for key in METRIC_COLUMNS}
    row.update({key: _number(stability.get(key)) for key in STABILITY_COLUMNS})
    row.update(
        n_samples=_number(data.get("n_samples")),
        protocol=data.get("protocol"),
        kind="reference" if data["model"] in REFERENCE_ROWS else "model",
        source=MEASURED,
    )
    return row


def _order(model: str) -> tuple[int, int, str]:
    if model in REFERENCE_ROWS:
        return (0, REFERENCE_ROWS.index(model), model)
    if model in FIRST_MODELS:
        return (1, FIRST_MODELS.index(model), model)
    return (2, 0, model)


def measured_table(metrics_dir: str | Path, dataset: str) -> pd.DataFrame:
    """Rows measured here for `dataset`: one per `<metrics_dir>/<dataset>/*.json`, reference rows first (oracle,
    memorization, random), then autoperi, then other models alphabetically. `*_csp.json` (crystal structure
    prediction reports, another schema) are not generation rows and are left out."""
    folder = Path(metrics_dir) / dataset
    records = {}
    for path in sorted(p for p in folder.glob("*.json") if not p.name.endswith("_csp.json")):
        data = read_metrics(path)
        if data.get("dataset") not in (None, dataset):
            raise ValueError(f"{path}: dataset {data.get('dataset')!r} in a folder of {dataset!r}")
        records[str(data["model"])] = _row(data)
    columns = [*METRIC_COLUMNS, *STABILITY_COLUMNS, "n_samples", "protocol", "kind", "source"]
    frame = pd.DataFrame.from_dict(records, orient="index", columns=columns)
    frame = frame.loc[sorted(frame.index, key=_order)]
    frame.index.name = "row"
    return frame


def comparison_table(metrics_dir: str | Path, dataset: str, include_published: bool = True) -> pd.DataFrame:
    """Measured rows of `dataset` and, where the test set is the published one (perov_5, carbon_24), the published
    rows after them, labelled "<model> (published)" with kind = "published" and their source. mp20_bt gets no
    published rows here: see `not_comparable_published(dataset)`."""
    frame = measured_table(metrics_dir, dataset)
    published_name = COMPARABLE_DATASET.get(dataset)
    if not include_published or published_name is None:
        return frame
    published = published_table(published_name)
    if published.empty:
        return frame
    numeric = (*METRIC_COLUMNS, *STABILITY_COLUMNS, "n_samples")
    extra = pd.DataFrame({c: published[c] if c in published else math.nan for c in numeric}, index=published.index)
    extra = extra.astype(float)
    extra["protocol"] = "cdvae"
    extra["kind"] = "published"
    extra["source"] = [f"{s}, {t}" for s, t in zip(published["source"], published["table"], strict=True)]
    out = pd.concat([frame.astype({c: float for c in numeric}), extra]) if len(frame) else extra
    out = out[frame.columns]
    out.index.name = "row"
    return out


def not_comparable_published(dataset: str) -> tuple[pd.DataFrame, str] | None:
    """For a dataset whose test set differs from the published one (mp20_bt vs MP-20): the published table and
    the caption to print above it; None otherwise."""
    published_name = NOT_COMPARABLE_DATASET.get(dataset)
    if published_name is None:
        return None
    caption = (
        f"Published rows on {published_name} (full MP-20 test set) — a different test set from {dataset}: "
        "not comparable with the rows measured here."
    )
    return published_table(published_name), caption


def _cell(column: str, value, digits: int) -> str:
    if value is None:
        return "—"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if math.isnan(value):
            return "—"
        if column in PERCENT_COLUMNS:
            return f"{value:.{digits}f}"
        return f"{value:.4g}"  # distances: four significant digits, as the published tables give them
    return str(value)


def format_table(frame: pd.DataFrame, columns=None, digits: int = 2) -> str:
    """Markdown table of `frame` (columns default: the CDVAE and seed metrics present): percentages with `digits`
    decimals, distances with 4 significant digits, NaN shown as "—"."""
    columns = list(columns) if columns is not None else [c for c in METRIC_COLUMNS if c in frame.columns]
    header = "| row | " + " | ".join(columns) + " |"
    lines = [header, "|" + "---|" * (len(columns) + 1)]
    for label, row in frame.iterrows():
        cells = [_cell(column, row[column], digits) for column in columns]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
