"""Result sets: older run folders read with today's column names, and point labels that sort by depth."""

from __future__ import annotations

import pandas as pd

from layerdrift.workbench.store.results import ResultSet, StoredResultSet, save_result_set


def save_as_written_before(root, name: str, tables: dict[str, pd.DataFrame]) -> None:
    """Save tables exactly as given (as a run folder from before a rename would hold them)."""
    result = ResultSet(name, "f" * 64, {})
    result.tables = tables
    save_result_set(root, result)


def test_an_old_patching_table_reads_with_block(tmp_path):
    old = pd.DataFrame({"direction": ["a into b"] * 3, "layer": [0, 1, 2], "normalised_logit_diff": [0.1, 0.5, 1.0]})
    save_as_written_before(tmp_path, "patching", {"patching": old})
    table = StoredResultSet(tmp_path, "patching").table("patching")
    assert list(table.columns) == ["direction", "block", "normalised_logit_diff"]
    assert table["block"].tolist() == [0, 1, 2]


def test_an_old_concentration_table_reads_with_label(tmp_path):
    old = pd.DataFrame({"series": ["s"] * 3, "layer": ["0", "final", "all"], "c": [0.2, 0.4, 0.3]})
    save_as_written_before(tmp_path, "trajectory", {"concentration": old})
    table = StoredResultSet(tmp_path, "trajectory").load().tables["concentration"]
    assert table["label"].tolist() == ["0", "final", "all"] and "layer" not in table


def test_a_drift_layer_column_is_not_renamed(tmp_path):
    layers = pd.DataFrame({"pair": ["a→b"] * 2, "layer": [0, 1], "label": ["embed", "final"]})
    save_as_written_before(tmp_path, "analysis", {"layers": layers})
    assert StoredResultSet(tmp_path, "analysis").table("layers")["layer"].tolist() == [0, 1]


def test_point_labels_sort_by_depth_written_and_read(tmp_path):
    labels = ["final", "10", "embed", "2", "0"]
    fresh = ResultSet("analysis", "f" * 64, {"t": pd.DataFrame({"label": labels, "x": range(5)})})
    assert fresh.tables["t"].sort_values("label")["label"].tolist() == ["embed", "0", "2", "10", "final"]
    save_result_set(tmp_path, fresh)
    read = StoredResultSet(tmp_path, "analysis").table("t")
    assert read.sort_values("label")["x"].tolist() == [2, 4, 3, 1, 0]
    assert read["label"].tolist() == labels  # the values themselves are unchanged strings
    old = pd.DataFrame({"label_a": ["1", "embed"], "label_b": ["final", "11"]})
    save_as_written_before(tmp_path, "behaviour", {"behaviour_cross": old})
    cross = StoredResultSet(tmp_path, "behaviour").table("behaviour_cross")
    assert cross["label_b"].cat.categories.tolist() == ["11", "final"] and cross["label_a"].cat.ordered
