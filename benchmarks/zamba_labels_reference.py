"""Reference outputs for kifaru.train.labels, made by zamba 2.7.2's own TrainConfig.

Run with zamba's Python, from the repository root (a random-weight time_distributed checkpoint
made by benchmarks/make_zamba_checkpoints.py gives zamba the model's species offline):

    HF_HUB_OFFLINE=1 /work/zamba-venv/bin/python benchmarks/zamba_labels_reference.py \
        bench-out/zamba_models/time_distributed_random.ckpt

It writes tests/fixtures/zamba_train/labels_cases.json: labels tables (species subsets, new
species, multi-label rows, sites with gaps, a binary case, a given split column) and, for each,
the species, one-hot targets and splits zamba's TrainConfig makes of them.
"""

import json
import random
import sys
import tempfile
from pathlib import Path

import pandas as pd
from zamba.models.config import TrainConfig

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "zamba_train" / "labels_cases.json"


def cases():
    rng = random.Random(7)
    subset = [{"filepath": f"{sp}_{i}.mp4", "label": sp} for sp in ("elephant", "gorilla", "antelope_duiker") for i in range(rng.randint(5, 11))]
    yield "species_subset", subset, {}
    yield "species_subset_new_head", subset, {"use_default_model_labels": False}
    new = [{"filepath": f"clip_{i:03d}.mp4", "label": rng.choice(["dog", "cat", "cow", "zebu"])} for i in range(40)]
    new += [{"filepath": f"clip_{i:03d}.mp4", "label": "bird"} for i in range(0, 40, 7)]  # multi-label rows
    yield "new_species_multilabel", new, {}
    yield "new_species_proportions", new, {"split_proportions": {"train": 2, "val": 1, "holdout": 0}}
    sited = [
        {"filepath": f"s_{i:03d}.mp4", "label": rng.choice(["dog", "cat"]), "site": (None if i % 9 == 0 else f"site_{rng.randint(0, 11)}")}
        for i in range(60)
    ]
    yield "sites_with_gaps", sited, {}
    binary = [{"filepath": f"b_{i:02d}.mp4", "label": rng.choice(["blank", "animal"])} for i in range(20)]
    yield "binary", binary, {}
    given = [{"filepath": f"g_{i:02d}.mp4", "label": rng.choice(["dog", "cat"]), "split": rng.choice(["train", "val", "holdout"])} for i in range(15)]
    yield "split_column", given, {}


def main(checkpoint):
    results = []
    for name, rows, options in cases():
        folder = Path(tempfile.mkdtemp())
        for row in rows:
            (folder / row["filepath"]).touch()
        pd.DataFrame(rows).to_csv(folder / "labels.csv", index=False)
        config = TrainConfig(
            labels=folder / "labels.csv", data_dir=folder, checkpoint=checkpoint,
            skip_load_validation=True, save_dir=folder / "out", **options,
        )
        table = config.labels
        species_columns = [c for c in table.columns if c.startswith("species_")]
        results.append(
            {
                "name": name,
                "rows": rows,
                "options": options,
                "use_default_model_labels": config.use_default_model_labels,
                "species": [c[len("species_"):] for c in species_columns],
                "clips": [
                    {"filepath": Path(r["filepath"]).name, "targets": [int(r[c]) for c in species_columns], "split": r["split"]}
                    for r in table.to_dict("records")
                ],
            }
        )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {len(results)} cases to {OUT}")


if __name__ == "__main__":
    main(sys.argv[1])
