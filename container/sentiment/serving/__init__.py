"""Serving: SageMaker's inference contract (`GET /ping`, `POST /invocations`) as a Flask app under gunicorn.

The request path uses the SageMaker inference toolkits' four steps: `model_fn` loads the model
(`model.py`), `input_fn` decodes a request by content type (`codecs.py`), `predict_fn` scores it
through the micro-batcher (`batching.py`), `output_fn` encodes by Accept (`codecs.py`). `app.py`
wires them to routes; `errors.py` maps each failure to its status code in one place.
"""
