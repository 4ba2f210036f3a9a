"""nlpflow: orchestrated, reproducible NLP training pipelines.

    nlpflow run                  # the training flow, once (Prefect, MLflow, DVC)
    dvc repro                    # the same stages, run by DVC (`nlpflow stage NAME` each)

Layers, low to high; a module imports its own layer and those below, never one above
(tests/unit/test_architecture.py checks every import, and that no two modules import each other):

    base           nlpflow/*.py: errors, shutdown (stop signals), hashing
    config         params (params.yaml), settings (the environment), naming
    data | training | evaluation     the stages' library code; peers
    tracking       the MLflow adapter: the one place mlflow is imported, besides the few
                   modules of the MLflow model format (serving's pyfunc and scoring app)
    release | serving                registry, gate, lineage | the pyfunc, the HTTP server
    pipeline       the stage table both runners execute, runs, locking, DVC
    orchestration  Prefect deployments and the temporary Prefect server
    tasks          Prefect tasks: call the library, add retries and caching
    flows          Prefect flows: compose tasks
    cli            the command line (nlpflow.cli.main:main)

prefect is imported only in orchestration, tasks and flows. Heavy libraries (torch, transformers,
spacy, great_expectations) are imported where they are used, so `import nlpflow` and
`nlpflow --help` stay fast.
"""

__version__ = "0.1.0"
