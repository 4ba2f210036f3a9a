"""One-shot of the team stack (service mlflow-users): the pipeline's MLflow user, made by the
admin through MLflow's REST API (basic-auth app). Not an admin: it gets MANAGE on the
experiments and models it creates and default_permission (READ) on everything else.
Idempotent: a user that exists already is left as it is (change its password in MLflow's UI
or with /api/2.0/mlflow/users/update-password)."""

import base64
import json
import os
import sys
import urllib.error
import urllib.request

admin = f"{os.environ['MLFLOW_AUTH_ADMIN_USERNAME']}:{os.environ['MLFLOW_AUTH_ADMIN_PASSWORD']}"
body = {
    "username": os.environ["MLFLOW_PIPELINE_USERNAME"],
    "password": os.environ["MLFLOW_PIPELINE_PASSWORD"],
}
request = urllib.request.Request(
    f"{os.environ['MLFLOW_URL']}/api/2.0/mlflow/users/create",
    data=json.dumps(body).encode(),
    headers={
        "Content-Type": "application/json",
        "Authorization": "Basic " + base64.b64encode(admin.encode()).decode(),
    },
)
try:
    urllib.request.urlopen(request, timeout=30).close()
    print(f"created MLflow user {body['username']}")
except urllib.error.HTTPError as exc:
    said = exc.read().decode(errors="replace")
    if "RESOURCE_ALREADY_EXISTS" not in said:
        sys.exit(f"creating MLflow user {body['username']} failed: {exc.code} {said[:300]}")
    print(f"MLflow user {body['username']} exists already")
