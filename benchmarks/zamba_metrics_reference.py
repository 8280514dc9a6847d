"""Reference values for kifaru.train.metrics, computed by zamba 2.7.2's own metric code.

Run with zamba's Python (its venv has scikit-learn), from the repository root:

    /work/zamba-venv/bin/python benchmarks/zamba_metrics_reference.py

It writes tests/fixtures/zamba_train/metrics_cases.json: random labels and probabilities (with
ties, species absent from the labels, multi-label rows) and what zamba logs for them.
"""

import json
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, top_k_accuracy_score
from zamba.metrics import compute_species_specific_metrics

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "zamba_train" / "metrics_cases.json"


def zamba_metrics(y_true, y_proba, species, subset):
    """zamba.pytorch_lightning.video_modules' compute_and_log_metrics, logging into a dict."""
    y_pred = y_proba.round().astype(int)
    out = {f"{subset}_macro_f1": f1_score(y_true, y_pred, average="macro", zero_division=0)}
    if len(species) > 2:
        for k in (1, 3, 5, 10):
            if k < len(species):
                out[f"{subset}_top_{k}_accuracy"] = top_k_accuracy_score(
                    y_true.argmax(axis=1), y_proba, labels=np.arange(y_proba.shape[1]), k=k
                )
    else:
        out[f"{subset}_accuracy"] = accuracy_score(y_true, y_pred)
    for name, label, value in compute_species_specific_metrics(y_true, y_pred, species):
        out[f"species/{subset}_{name}/{label}"] = value
    return {key: float(value) for key, value in out.items()}


def main():
    rng = np.random.default_rng(20261121)
    cases = []
    for case in range(40):
        n_species = int(rng.choice([1, 2, 3, 5, 12]))
        n_clips = int(rng.integers(4, 30))
        y_true = np.zeros((n_clips, n_species), dtype=int)
        y_true[np.arange(n_clips), rng.integers(0, n_species, n_clips)] = 1
        if case % 3 == 0:  # some multi-label rows
            y_true[rng.random((n_clips, n_species)) < 0.15] = 1
        if case % 4 == 0 and n_species > 2:  # a species nobody labelled
            y_true[:, -1] = 0
            y_true[y_true.sum(axis=1) == 0, 0] = 1
        y_proba = rng.random((n_clips, n_species))
        if case % 2 == 0:  # ties and exact halves
            y_proba = np.round(y_proba * 4) / 4
        species = [f"species_{i}" for i in range(n_species)]
        cases.append(
            {
                "species": species,
                "y_true": y_true.tolist(),
                "y_proba": y_proba.tolist(),
                "metrics": zamba_metrics(y_true, y_proba, species, "val"),
            }
        )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(cases, indent=1) + "\n")
    print(f"wrote {len(cases)} cases to {OUT}")


if __name__ == "__main__":
    main()
