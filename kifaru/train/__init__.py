"""Training video classifiers from a labels file: ``kifaru.train_model`` (kifaru.train.runner)."""
