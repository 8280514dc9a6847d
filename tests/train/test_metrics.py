import json
from pathlib import Path

import numpy as np
import pytest

from kifaru.train.metrics import classification_metrics, macro_f1, top_k_accuracy

CASES = json.loads((Path(__file__).parents[1] / "fixtures" / "zamba_train" / "metrics_cases.json").read_text())


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{len(c['species'])}sp-{len(c['y_true'])}clips")
def test_metrics_are_zambas_on_its_own_cases(case):
    """Cases with ties, exact halves, multi-label rows and unlabelled species, scored by zamba 2.7.2
    (benchmarks/zamba_metrics_reference.py)."""
    ours = classification_metrics(np.array(case["y_true"]), np.array(case["y_proba"]), case["species"], "val")
    assert set(ours) == set(case["metrics"])
    for name, value in case["metrics"].items():
        assert ours[name] == pytest.approx(value, abs=1e-12), name


def test_a_species_nobody_has_or_predicts_counts_zero_in_macro_f1():
    y_true = np.array([[1, 0, 0], [0, 1, 0]])
    assert macro_f1(y_true, y_true) == pytest.approx(2 / 3)


def test_top_k_ranks_the_first_true_species():
    y_true = np.array([[0, 1, 0, 0], [0, 0, 0, 1]])
    proba = np.array([[0.9, 0.8, 0.1, 0.0], [0.4, 0.3, 0.2, 0.1]])
    assert top_k_accuracy(y_true, proba, 1) == 0.0
    assert top_k_accuracy(y_true, proba, 2) == 0.5
    assert top_k_accuracy(y_true, proba, 4) == 1.0


def test_two_species_report_accuracy_of_whole_rows_instead_of_top_k():
    metrics = classification_metrics(np.array([[1, 0], [1, 1]]), np.array([[0.9, 0.1], [0.9, 0.2]]), ["a", "b"], "test")
    assert metrics["test_accuracy"] == 0.5
    assert not any("top_" in name for name in metrics)
    assert metrics["species/test_recall/b"] == 0.0


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError, match="shapes differ"):
        classification_metrics(np.zeros((2, 3)), np.zeros((2, 2)), ["a", "b", "c"], "val")
