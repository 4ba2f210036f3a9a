"""A bad rules file through the CLI: `nlpflow stage train` says which file, line and rule, and
the fix, exits 2 and prints no traceback; params that misuse the rules family stop
`nlpflow params` the same way.

    .venv/bin/python -m pytest tests/integration/test_rules_cli.py -q
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.subprocess
GOOD = """\
default: ham
rules:
  - {name: prize, label: spam, priority: 10, keywords: [prize, claim]}
  - {name: short_code, label: spam, regex: '\\b\\d{5}\\b'}
"""


def _project(tmp_path: Path, rules: str) -> Path:
    root = tmp_path / "project"
    (root / "data" / "processed").mkdir(parents=True)
    rows = pd.DataFrame({"text": ["claim your prize", "see you at 5"], "label": ["spam", "ham"]})
    for split in ("train", "validation"):
        rows.to_parquet(root / "data" / "processed" / f"{split}.parquet")
    (root / "rules.yaml").write_text(rules)
    params = {
        "data": {"labels": ["ham", "spam"]},
        "train": {"family": "rules", "rules": {"patterns": "rules.yaml"}},
    }
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    return root


def _nlpflow(root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    env = env | {"NLPFLOW_PROJECT_DIR": str(root)}
    env.pop("NLPFLOW_TRACKING_URI", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run(
        ["nlpflow", *args], cwd=root, capture_output=True, text=True, env=env, timeout=300
    )


@pytest.mark.parametrize(
    ("broken", "expected"),
    [
        (
            GOOD.replace("'\\b\\d{5}\\b'", "'(\\d{5}'"),
            "rules.yaml:4: rule 'short_code': regex '(\\d{5}' does not compile (missing ),",
        ),
        (
            GOOD.replace("label: spam, priority", "label: Spam, priority"),
            "rules.yaml:3: rule 'prize': label 'Spam' is not one of the labels (ham, spam)",
        ),
    ],
)
def test_a_bad_rules_file_stops_train_with_its_line_and_rule(
    tmp_path: Path, venv_env: dict[str, str], broken: str, expected: str
) -> None:
    root = _project(tmp_path, broken)
    done = _nlpflow(root, venv_env, "stage", "train")
    assert done.returncode == 2, done.stdout + done.stderr
    assert expected in done.stderr
    assert "[NLP001]" in done.stderr  # a params error: the rules file is the user's to fix
    assert "Traceback" not in done.stdout + done.stderr
    assert not (root / "models" / "model").exists()


def test_a_good_rules_file_trains_and_the_params_refuse_a_gazetteer(
    tmp_path: Path, venv_env: dict[str, str]
) -> None:
    root = _project(tmp_path, GOOD)
    done = _nlpflow(root, venv_env, "stage", "train")
    assert done.returncode == 0, done.stderr
    assert (root / "models" / "model" / "rules.yaml").read_text() == GOOD
    refused = _nlpflow(root, venv_env, "params", "--set", "train.rules.from_train=true")
    assert refused.returncode == 2
    assert "a gazetteer of train entities is for token-classification" in refused.stderr
    assert "Traceback" not in refused.stdout + refused.stderr
