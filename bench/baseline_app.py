"""The cold-start baseline: a bare Chalice app that imports boto3, nothing else."""

import boto3  # noqa: F401  (the point of the baseline: what any boto3-using Lambda pays)
from chalice import Chalice

app = Chalice(app_name="baseline")


@app.route("/")
def index():
    return {"hello": "world"}
