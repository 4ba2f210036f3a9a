"""nlpflow: orchestrated, reproducible NLP training pipelines.

    nlpflow run                  # the training flow, once (Prefect, MLflow, DVC)
    dvc repro                    # the same stages, run by DVC (`nlpflow stage NAME` each)

Layers, low to high; a module imports its own layer and those below, never one above
(tests/unit/test_architecture.py checks every import, and that no import cycle exists):

    base           nlpflow/*.py: errors, shutdown (stop signals), hashing, processes
    config         params (params.yaml), settings (the environment), naming
    data           sources, gather, validation, preprocess
    training | evaluation   peers: model families score with evaluation.metrics, evaluate loads them
    tracking       the MLflow adapter: the one place mlflow is imported, besides the few
                   modules of the MLflow model format (nlpflow.tracking.MLFLOW_MODEL_FORMAT)
    serving        the pyfunc shipped in every model, the HTTP server, batch scoring
    release        registry, gate, lineage: register a model, move the champion
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
