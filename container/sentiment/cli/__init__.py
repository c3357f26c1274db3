"""Command-line entry points: `serve` (the model server), `sentiment-train` (the training job, which SageMaker's
`train` runs), `sentiment-evaluate` (a model on labeled reviews) and `sentiment-bundle` (the bundled model)."""
