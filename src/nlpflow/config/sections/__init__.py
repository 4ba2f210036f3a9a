"""The sections of params.yaml, one module each (data, validate, preprocess, train and its
families, evaluate, register and serve, inference, schedule, sweep, runtime).

nlpflow.config.params puts them together as Params and reads params.yaml; import the sections
from there (`from nlpflow.config.params import TrainParams`).
"""
