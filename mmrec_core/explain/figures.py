"""The attribution chart: one candidate's context pieces as horizontal bars, largest effect on top."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

UP, DOWN = "#2e7d32", "#c62828"  # the piece pushes the score up / holds it down


def attribution_figure(rows: pd.DataFrame, most: int = 12) -> go.Figure:
    """Bars of `effect` (score - score without the piece) from `with_sentences` rows; the sentence on hover."""
    rows = rows.head(most).iloc[::-1]  # plotly draws the first bar at the bottom
    labels = [f"{kind}: {text[:48]}" for kind, text in zip(rows["piece_kind"], rows["piece_text"], strict=True)]
    fig = go.Figure(
        go.Bar(
            x=rows["effect"],
            y=labels,
            orientation="h",
            marker_color=[UP if e >= 0 else DOWN for e in rows["effect"]],
            hovertext=rows["sentence"],
            hoverinfo="text",
        )
    )
    fig.update_layout(
        height=max(220, 34 * len(rows) + 80),
        margin={"l": 10, "r": 10, "t": 30, "b": 30},
        xaxis_title="score with the piece minus score without it",
        yaxis={"automargin": True},
    )
    return fig
