"""Entity-level scores of token classification (named-entity recognition), pure functions of
BIO (IOB2) tag sequences, one list of tags per sentence:

- `scores`: seqeval's strict scores, nervaluate's partial/exact/type matching, the confusion
  of entity types and the table of errors;
- `slices`: seen vs unseen entities, entity length, sentence length;
- `bootstrap`: the interval of entity F1 over sentences, and the paired test of two models.

    from nlpflow.evaluation.ner.scores import entity_scores
    entity_scores([["B-person", "I-person", "O"]], [["B-person", "O", "O"]])["entity_f1"]  # 0.0
"""
