"""Tables as small standalone HTML pages: what the Snakemake report shows inline (it only links CSV files)."""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from mlpipe.io import write_text

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1rem; color: #1e293b; }
table { border-collapse: collapse; font-size: 0.85rem; }
th, td { border-bottom: 1px solid #cbd5e1; padding: 0.3rem 0.6rem; text-align: right; white-space: nowrap; }
th { background: #f1f5f9; position: sticky; top: 0; }
td:first-child, th:first-child { text-align: left; }
p.empty { color: #64748b; }
"""


def write_html_table(table: pd.DataFrame, path: Path, title: str, empty_note: str = "No rows.") -> None:
    """Write ``table`` as an HTML page, floats to 4 significant digits."""
    body = (
        table.to_html(index=False, na_rep="", float_format=lambda value: f"{value:.4g}", border=0)
        if len(table)
        else f'<p class="empty">{html.escape(empty_note)}</p>'
    )
    write_text(
        path,
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body><h3>{html.escape(title)}</h3>{body}</body></html>\n",
    )
