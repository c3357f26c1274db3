"""The stages of deploy/sagemaker.py, one module each, and the AWS helpers they share (aws.py).
Imports run one way: sagemaker.py -> the stages -> aws.py; endpoints and teardown also use autoscaling's names."""
