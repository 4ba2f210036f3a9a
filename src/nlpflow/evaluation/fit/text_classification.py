"""text-classification's behavioural file: tests name the data's labels."""

from nlpflow.evaluation.behavioural import check_fit as check_behavioural

__all__ = ["check_behavioural"]
