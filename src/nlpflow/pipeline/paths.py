"""Where the pipeline's stages read and write, relative to the project folder.

    from nlpflow.pipeline.paths import MODEL   # "models/model"

Apart from the stage table (nlpflow.pipeline.stages) so that each stage's module imports these
and not the table: a stage's code is what its module imports (nlpflow.pipeline.codedeps).
"""

GATHERED = "data/gathered"
VALIDATION = "reports/validation"
VALIDATED = "data/validated"  # the gathered rows that passed validation (quarantined ones left out)
QUARANTINE = "data/quarantine"
GX_PROJECT = "gx"  # the Great Expectations project, under version control
ACCEPTED = ".nlpflow/accepted"  # last accepted snapshot of each source, for drift checks
PROCESSED = "data/processed"
# The train params the chosen family reads (nlpflow.config.params.read_by_train): what train depends
# on, so a knob of another family (train.svm.C on a transformer), or the baseline's tf-idf, does
# not retrain the model in either runner.
TRAIN_PARAMS = "models/train_params.yaml"
# The same for the baseline stage: its family (train.baseline, or the NLP task's own) and the
# train params that family reads
BASELINE_PARAMS = "models/baseline_params.yaml"
MODEL = "models/model"
BASELINE = "models/baseline"  # the baseline family on the same data: the gate's yardstick
TRAIN_HISTORY = "reports/train_history.csv"
METRICS = "reports/metrics.json"
PLOTS = "reports/plots"
EVALUATION = "reports/evaluation"  # predictions, slices, behavioural results, worst errors
BEHAVIOURAL = "behavioural.yaml"  # the project's behavioural tests (evaluate.behavioural)
REGISTRATION = "reports/registration.json"
MODEL_CARD = "reports/model_card.md"
HTTP_CACHE = ".nlpflow/cache/http"  # downloads, by URL; not a pipeline output
# of unfinished trainings, by the train stage's code and then the training key; not logged
CHECKPOINTS = ".nlpflow/checkpoints"
# outputs by the preprocess stage's code, then by hash of input and params
PREPROCESS_CACHE = ".nlpflow/cache/preprocess"
SQL_SNAPSHOT = ".nlpflow/cache/sql/snapshot.parquet"  # the query's rows, as gather reads them
