"""The publish stage: validated dataset, manifest and dataset card under datasets/."""
