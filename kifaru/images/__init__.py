"""Camera-trap photos: reading them, the detector's crops, the classifiers' preprocessing, the
image classifier, and bursts grouped into sequences."""
