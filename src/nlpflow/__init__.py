"""nlpflow: orchestrated, reproducible NLP training pipelines.

The library layer. Nothing here imports prefect; only `tracking` and `registry` import mlflow.
Heavy libraries (torch, transformers, spacy, great_expectations) are imported where they are used,
so `import nlpflow` and `nlpflow --help` stay fast.
"""

__version__ = "0.1.0"
