"""Model weights: finding, downloading and checking them."""
