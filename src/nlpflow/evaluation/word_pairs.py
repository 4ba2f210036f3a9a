"""nlpflow's word-pair similarity list: the yardstick of evaluate's word-similarity correlation
for static word vectors (nlpflow.evaluation.embeddings).

How it was made. nlpflow's developers wrote it for this project (it is not drawn from
WordSim-353, SimLex-999 or any other published list). Every word is a common English word that
occurs at least 5 times in the train split of the MR movie-review sentences
(../shared/datasets/mr), so vectors trained on review-like text cover the list. Each pair was
put in exactly one class of the rubric below, and its score is the class's score: nobody rated a
pair on a free scale, so the scores can be re-derived from the classes alone.

    class  score  rule (similarity of meaning, as in SimLex, not mere association)
    S      9      synonyms: interchangeable in most sentences (film, movie)
    N      7      near-synonyms: one meaning, differing in strength or register (good, great)
    C      5      co-hyponyms: two members of one category, alike but not interchangeable
                  (comedy, drama)
    R      3      related: one brings the other to mind by topic, part or role, without the two
                  being alike (actor, film)
    A      1      antonyms: opposite ends of one scale (love, hate); alike in kind, opposite in
                  meaning, so low
    U      0      unrelated (water, script)

Antonyms score low on purpose: vectors learnt from contexts put "good" beside "bad" (they fill
the same slots), and this list is meant to show that weakness, which matters for sentiment.
With only six distinct scores, the Spearman correlation is computed on tied ranks.

Columns: word, word, score, class.
"""

from __future__ import annotations

WORD_PAIRS_TSV = """\
film	movie	9	S
script	screenplay	9	S
begin	start	9	S
end	finish	9	S
clever	smart	9	S
stupid	dumb	9	S
kid	child	9	S
dull	boring	9	S
good	great	7	N
good	excellent	7	N
bad	awful	7	N
bad	terrible	7	N
funny	hilarious	7	N
funny	amusing	7	N
boring	tedious	7	N
interesting	intriguing	7	N
plot	story	7	N
masterpiece	triumph	7	N
mess	disaster	7	N
actor	director	5	C
actor	actress	5	C
comedy	drama	5	C
thriller	horror	5	C
drama	thriller	5	C
man	woman	5	C
boy	girl	5	C
father	mother	5	C
son	daughter	5	C
minute	hour	5	C
actor	film	3	R
director	movie	3	R
laugh	comedy	3	R
joke	funny	3	R
camera	shot	3	R
heart	love	3	R
war	death	3	R
cast	actor	3	R
family	father	3	R
fear	horror	3	R
money	rich	3	R
love	hate	1	A
good	bad	1	A
beautiful	ugly	1	A
happy	sad	1	A
old	young	1	A
long	short	1	A
big	small	1	A
strong	weak	1	A
fast	slow	1	A
easy	hard	1	A
light	dark	1	A
smart	stupid	1	A
fresh	stale	1	A
water	script	0	U
car	comedy	0	U
road	actress	0	U
money	screenplay	0	U
soul	minute	0	U
"""


def load_word_pairs() -> list[tuple[str, str, float]]:
    """(word, word, score) for each pair of the list."""
    pairs = []
    for line in WORD_PAIRS_TSV.splitlines():
        first, second, score, _ = line.split("\t")
        pairs.append((first, second, float(score)))
    return pairs
