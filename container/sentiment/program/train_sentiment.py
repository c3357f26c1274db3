"""The program SageMaker's training toolkit runs (SAGEMAKER_PROGRAM), hyperparameters as flags.

The toolkit's `train` runs the file named by SAGEMAKER_PROGRAM from /opt/ml/code, so the image
(and `sentiment-bundle`) copies this file there; it hands over to the package's training job.
"""

import sys

from sentiment.cli.train import main

sys.exit(main())
