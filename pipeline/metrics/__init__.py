"""Tracking metrics: edges, tracks (matching styles), the TrackML score and V-scores."""
from trkx.metrics.edges import edge_counts, roc_auc, summarize_edge_counts
from trkx.metrics.trackml import trackml_score
from trkx.metrics.tracks import STYLES, TargetSelection, efficiency_vs, match_pairs, track_metrics
from trkx.metrics.vscore import v_score

__all__ = ["edge_counts", "roc_auc", "summarize_edge_counts", "trackml_score", "STYLES", "TargetSelection",
           "efficiency_vs", "match_pairs", "track_metrics", "v_score"]
