"""The least a Flask route costs under gunicorn: one `GET /ping` that answers a fixed JSON body, with no
hooks, metrics, log line or model. `benchmarks/serve.py` runs it under the same gunicorn settings as
`serve` (gthread, its workers and threads) to show the floor that no change to our app can go below.

    gunicorn -k gthread -w 2 --threads 8 -b 127.0.0.1:8090 --chdir benchmarks bare_flask:app
"""

from __future__ import annotations

import json

from flask import Flask, Response

app = Flask(__name__)


@app.get("/ping")
def ping() -> Response:
    return Response(json.dumps({"status": "ready"}), mimetype="application/json")
