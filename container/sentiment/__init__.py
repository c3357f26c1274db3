"""IMDb movie-review sentiment: data, text pipeline, models, training and serving for SageMaker.

Importing the package is cheap (no torch): `deploy/` scripts use `sentiment.data` without it.
"""

__version__ = "0.1.0"
