"""Serving: SageMaker's inference contract (`GET /ping`, `POST /invocations`) as a Flask app under gunicorn,
with nginx in front.

A request goes through the SageMaker inference toolkits' steps: `model_fn` loads the model
(`loading.py`), `input_fn` decodes the body by content type and `answer_type` picks the answer's
format from Accept, once (`codecs.py`), the predictor tokenizes once, scores through the micro-batcher
(`batching.py`) and makes the verdicts, and `output_fn` encodes them (`codecs.py`). `app.py` wires the
steps to routes and bounds each request's work; `errors.py` maps each failure to its status code in
one place; `metrics.py` counts; `front.py` configures nginx; `memory.py` keeps a worker's memory down.
"""
