"""One module per pipeline stage, each with `run(ctx) -> report`: the glue between the stage
table (nlpflow.pipeline.stages) and the stage's library function. What a module imports is
the stage's code (nlpflow.pipeline.codedeps), so each imports only what its stage runs."""
