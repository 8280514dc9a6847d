"""Classification metrics of zamba's training, as plain functions of arrays.

The definitions are zamba 2.7.2's (scikit-learn's, which it calls): a species is predicted when
its probability rounds to 1 (> 0.5); macro F1 is the mean over all the model's species of each
species' F1, counting 0 where a species has neither true nor predicted positives (one species:
the mean F1 of present and absent); top-k accuracy
takes each clip's first true species (it is a single-label measure) and is reported for k in
1, 3, 5, 10 below the number of species, plain accuracy (every species right) when there are
two species or fewer.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

TOP_K = (1, 3, 5, 10)


def predicted_labels(probabilities: np.ndarray) -> np.ndarray:
    """0/1 per species, as numpy rounds (0.5 itself rounds to 0)."""
    return np.round(probabilities).astype(int)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    out = np.zeros(numerator.shape, dtype=float)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def per_species_scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, np.ndarray]:
    """accuracy, f1, precision and recall of each species (column); 0 where undefined."""
    y_true = np.asarray(y_true).astype(bool)
    y_pred = np.asarray(y_pred).astype(bool)
    tp = (y_true & y_pred).sum(axis=0)
    fp = (~y_true & y_pred).sum(axis=0)
    fn = (y_true & ~y_pred).sum(axis=0)
    return {
        "accuracy": (y_true == y_pred).mean(axis=0),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
    }


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape[1] == 1:
        # One species (blank_nonblank) is a two-class problem to scikit-learn: the mean F1 of
        # "is" and "is not", over the classes that occur.
        columns = [np.column_stack([y_true[:, 0] == v, y_pred[:, 0] == v]) for v in (0, 1)]
        present = [c for c in columns if c.any()]
        return float(np.mean([per_species_scores(c[:, :1], c[:, 1:])["f1"][0] for c in present]))
    return float(per_species_scores(y_true, y_pred)["f1"].mean())


def top_k_accuracy(y_true: np.ndarray, probabilities: np.ndarray, k: int) -> float:
    """Share of clips whose first true species is among the k most probable."""
    first_true = np.asarray(y_true).argmax(axis=1)
    true_score = probabilities[np.arange(len(first_true)), first_true][:, None]
    # Ranked as scikit-learn ranks: among equal probabilities the later species comes first.
    later = np.arange(probabilities.shape[1])[None, :] > first_true[:, None]
    ahead = (probabilities > true_score) | ((probabilities == true_score) & later)
    return float((ahead.sum(axis=1) < k).mean())


def top_1_labels(probabilities: np.ndarray) -> np.ndarray:
    """0/1 per species: the most probable one (a softmax classifier's prediction)."""
    probabilities = np.asarray(probabilities)
    out = np.zeros(probabilities.shape, dtype=int)
    if probabilities.size:
        out[np.arange(len(probabilities)), probabilities.argmax(axis=1)] = 1
    return out


def classification_metrics(
    y_true: np.ndarray, probabilities: np.ndarray, species: Sequence[str], subset: str, y_pred: Optional[np.ndarray] = None
) -> dict[str, float]:
    """zamba's metrics under zamba's names: ``{subset}_macro_f1``, ``{subset}_top_{k}_accuracy``
    (or ``{subset}_accuracy``) and ``species/{subset}_{metric}/{species}``. ``y_pred``: the
    predicted species (0/1), if not each one above 0.5 (:func:`predicted_labels`)."""
    y_true = np.asarray(y_true).astype(int)
    probabilities = np.asarray(probabilities, dtype=float)
    if y_true.shape != probabilities.shape or y_true.shape[1] != len(species):
        raise ValueError(f"shapes differ: labels {y_true.shape}, probabilities {probabilities.shape}, {len(species)} species")
    y_pred = predicted_labels(probabilities) if y_pred is None else np.asarray(y_pred).astype(int)
    metrics = {f"{subset}_macro_f1": macro_f1(y_true, y_pred)}
    if len(species) > 2:
        for k in TOP_K:
            if k < len(species):
                metrics[f"{subset}_top_{k}_accuracy"] = top_k_accuracy(y_true, probabilities, k)
    else:
        metrics[f"{subset}_accuracy"] = float((y_true == y_pred).all(axis=1).mean())
    for name, values in per_species_scores(y_true, y_pred).items():
        for label, value in zip(species, values):
            metrics[f"species/{subset}_{name}/{label}"] = float(value)
    return metrics
