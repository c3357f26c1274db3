"""Command-line entry points: `sentiment-train` (the training job) and `sentiment-evaluate`."""
