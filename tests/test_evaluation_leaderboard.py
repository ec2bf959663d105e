"""Chapter 05 leaderboard: n-gram baselines by hand, the leaderboard table, template sensitivity."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from course_lib.evaluation import (PHRASINGS, NgramLM, evaluate, get_task, leaderboard, loglikelihood_tokens,
                                   ngram_baseline, ngram_counts, summary, template_sensitivity, with_template)

# A corpus of six tokens over a vocabulary of four: 1 2 1 3 1 2.
#   unigram counts: c(0) = 0, c(1) = 3, c(2) = 2, c(3) = 1; N = 6
#   bigram pairs: (1,2) (2,1) (1,3) (3,1) (1,2): c(1,2) = 2, c(1,3) = 1, c(2,1) = 1, c(3,1) = 1; c(1) = 3
CORPUS, V = [1, 2, 1, 3, 1, 2], 4


pytestmark = pytest.mark.usefixtures("one_thread")


def test_unigram_probabilities_by_hand():
    model = NgramLM.from_tokens(CORPUS, V, order=1, k=1.0)
    probs = model.log_probs(torch.tensor([[0, 3]])).exp()  # (1, 2, 4): the same row at every position
    expected = [(0 + 1) / 10, (3 + 1) / 10, (2 + 1) / 10, (1 + 1) / 10]  # (c + k) / (N + kV)
    assert probs[0, 0].tolist() == pytest.approx(expected)
    assert probs[0, 1].tolist() == pytest.approx(expected)


def test_bigram_probabilities_by_hand():
    model = NgramLM.from_tokens(CORPUS, V, order=2, k=0.5)
    probs = model.log_probs(torch.tensor([[1, 2, 0]])).exp()[0]  # rows: after 1, after 2, after 0
    # after 1: c(1, .) = [0, 0, 2, 1], c(1) = 3: (c + 0.5) / (3 + 2)
    assert probs[0].tolist() == pytest.approx([0.1, 0.1, 0.5, 0.3])
    # after 2: c(2, .) = [0, 1, 0, 0], c(2) = 1: (c + 0.5) / (1 + 2)
    assert probs[1].tolist() == pytest.approx([0.5 / 3, 1.5 / 3, 0.5 / 3, 0.5 / 3])
    # 0 never starts a pair: uniform
    assert probs[2].tolist() == pytest.approx([0.25] * 4)


def test_ngram_counts_and_errors():
    assert ngram_counts(CORPUS, V, 1).tolist() == [0, 3, 2, 1]
    assert ngram_counts(CORPUS, V, 2).toarray().tolist() == [[0, 0, 0, 0], [0, 0, 2, 1], [0, 1, 0, 0], [0, 1, 0, 0]]
    with pytest.raises(ValueError, match="order must be 1 .* or 2 .*, got 3"):
        ngram_counts(CORPUS, V, 3)
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 3\); got 1..3"):
        ngram_counts(CORPUS, 3, 1)
    with pytest.raises(ValueError, match="k must be > 0"):
        NgramLM.from_tokens(CORPUS, V, order=2, k=0)
    with pytest.raises(ValueError, match=r"order 2 needs counts of shape \(V, V\), got shape \(4,\)"):
        NgramLM(ngram_counts(CORPUS, V, 1), order=2)


def test_harness_scores_an_ngram_like_a_causal_model():
    # log P(3 1 | context 2 1) = log P(3 | 1) + log P(1 | 3), scored through the harness's batching and padding
    model = NgramLM.from_tokens(CORPUS, V, order=2, k=0.5)
    (ll, greedy), (ll2, greedy2) = loglikelihood_tokens(model, [([2, 1], [3, 1]), ([1], [2])], batch_size=2)
    assert ll == pytest.approx(math.log(0.3) + math.log(1.5 / 3))
    assert not greedy  # after 1, token 2 is likelier than 3
    assert ll2 == pytest.approx(math.log(0.5)) and greedy2


def test_ngram_generate_is_greedy_and_pads_after_the_end():
    model = NgramLM.from_tokens([1, 2, 3, 1, 2, 3, 1, 0], V, order=2, k=0.1)  # likeliest: 1 -> 2 -> 3 -> 1
    out = model.generate(torch.tensor([[1], [3]]), max_new_tokens=4, eos_token_id=3, pad_token_id=0)
    assert out.tolist() == [[1, 2, 3, 0], [3, 1, 2, 3]]  # padded after its end token; stops when all have ended
    assert model.generate(torch.tensor([[1]]), max_new_tokens=1).tolist() == [[1, 2]]
    with pytest.raises(ValueError, match="greedily"):
        model.generate(torch.tensor([[1]]), max_new_tokens=1, do_sample=True)


def test_bigram_beats_unigram_on_held_out_world_text(ci):
    from course_lib import zoo

    held_out = torch.from_numpy(zoo.get("pretrain-data", ci)["eval"].tokens.astype(np.int64))  # never counted

    def token_perplexity(model):
        logp = model.log_probs(held_out[None, :-1])[0]  # (T - 1, V)
        return math.exp(-logp.gather(-1, held_out[1:, None]).mean().item())

    (unigram, _), (bigram, _) = ngram_baseline(1, ci), ngram_baseline(2, ci)
    ppl1, ppl2 = token_perplexity(unigram), token_perplexity(bigram)
    # measured on ci: about 400 and 15; a bigram that ignored its context would equal the unigram
    assert ppl2 < ppl1 / 4, (ppl1, ppl2)
    assert ppl1 < unigram.config.vocab_size  # better than uniform over the vocabulary


def test_leaderboard_rows_are_complete_and_base_beats_the_unigram(ci):
    from course_lib import zoo

    models = {"unigram": ngram_baseline(1, ci), "bigram": ngram_baseline(2, ci), "base": zoo.get("base", ci)}
    tasks = ["perplexity_en", "multiple_choice_en", "korquad"]
    table = leaderboard(models, tasks, ci, limit=4, progress=False)
    assert list(zip(table["model"], table["task"])) == [(m, t) for m in models for t in tasks]
    assert table["score"].notna().all() and (table["ms_per_item"] > 0).all()
    assert table.set_index(["model", "task"])["n"].loc[("base", "korquad")] == 4
    bpb = table[table["task"] == "perplexity_en"].set_index("model")["score"]
    # bits per byte of held-out English documents, measured on ci: unigram ~2.9, bigram ~1.1, base ~0.5
    assert bpb["base"] < bpb["bigram"] - 0.2 < bpb["unigram"] - 1.0, bpb.to_dict()
    s = summary(table)
    assert list(s.index) == list(models)
    assert {"knowledge_closed_book", "reading_comprehension_ko", "average", "bits_per_byte", "ms_per_item"} <= set(s)
    assert s.loc["base", "bits_per_byte"] == pytest.approx(bpb["base"])


def test_template_sensitivity_scores_the_same_items_under_each_phrasing(ci):
    model, tokenizer = ngram_baseline(2, ci)
    result = template_sensitivity(model, tokenizer, "multiple_choice_en", config=ci, limit=5)
    task = get_task("multiple_choice_en")
    assert list(result["scores"]) == list(PHRASINGS["en"])
    assert result["ids"] == [r["id"] for r in task.rows(ci)[:5]]
    values = np.array(list(result["scores"].values()))
    assert result["min"] == values.min() and result["max"] == values.max()
    assert result["spread"] == pytest.approx(values.max() - values.min())
    assert result["std"] == pytest.approx(values.std())
    # one phrasing, scored on its own through evaluate, gives the same number
    alone = evaluate(model, tokenizer, [with_template(task, "Q: {question}\nA:")], config=ci, limit=5)
    assert alone["results"][task.name]["acc_norm"] == result["scores"]["Q/A"]


def test_with_template_formats_the_row_and_names_a_bad_field(ci):
    task = get_task("multiple_choice_en")
    row = task.rows(ci)[0]
    assert with_template(task, "Q: {question}\nA:").doc_to_text(row) == f"Q: {row['question']}\nA:"
    with pytest.raises(KeyError, match="names the field 'passage'"):
        with_template(task, "{passage}").doc_to_text(row)
