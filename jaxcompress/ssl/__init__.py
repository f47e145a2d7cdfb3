"""Self-supervised objectives, augmentations and frameworks."""
