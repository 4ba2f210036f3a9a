"""token-classification's behavioural file: tests name the data's entity types."""

from nlpflow.evaluation.ner.behavioural_suite import check_fit as check_behavioural

__all__ = ["check_behavioural"]
