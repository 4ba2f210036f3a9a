"""Scores of topic models (NLP task topic-modeling), pure functions of topics' top words,
tokenised documents, and document-topic shares:

- `metrics`: coherence (NPMI, C_v; gensim's CoherenceModel), diversity, agreement of dominant
  topics with known labels (NMI, ARI, purity), topic shares.

    from nlpflow.evaluation.topics.metrics import compute_diversity
    compute_diversity([["ball", "goal"], ["goal", "oven"]])  # 0.75: 3 unique words of 4
"""
