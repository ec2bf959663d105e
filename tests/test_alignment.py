"""Chapter 07's preference data, Bradley-Terry fit and losses: hand-computed values, and agreement with
scikit-learn (Bradley-Terry) on the same data."""

import math

import numpy as np
import pytest
import torch

from course_lib.alignment import bradley_terry as BT
from course_lib.alignment import preferences as P
from course_lib.curation.pii import find_pii
from course_lib.world import build_world

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "alignment-cache"))


@pytest.fixture(scope="module")
def prompts(ci):
    return P.preference_prompts(build_world(ci.world), per_kind=20)


# --------------------------------------------------------------------------- preference data


def test_prompts_cover_every_kind_in_both_languages_with_a_split(prompts):
    kinds = {(p["kind"], p["lang"]) for p in prompts}
    assert kinds == {(k, lang) for k in P.KINDS for lang in ("en", "ko")}
    assert {p["split"] for p in prompts} == {"train", "test"}
    assert len({p["id"] for p in prompts}) == len(prompts)
    for p in prompts:
        assert [m["role"] for m in p["messages"]] == ["system", "user"]
        assert [r["style"] for r in p["responses"]] == list(P.STYLES[p["kind"]])


def test_preference_data_is_deterministic(ci, prompts):
    world = build_world(ci.world)
    assert P.preference_prompts(world, per_kind=20) == prompts
    assert P.preference_prompts(world, per_kind=20, seed=1) != prompts


def test_the_rules_rank_every_prompts_responses_in_the_designed_order(prompts):
    for p in prompts:
        ranked = P.rank(p)
        assert [r["style"] for r in ranked] == list(P.STYLES[p["kind"]]), p["id"]
        assert ranked[0]["reward"] == sum(P.RULES.values())  # the best response keeps every rule


def test_gold_reward_scores_each_rule_by_hand(prompts):
    qa = next(p for p in prompts if p["kind"] == "qa_closed" and p["lang"] == "en")
    pii = next(p for p in prompts if p["kind"] == "pii" and p["lang"] == "ko")
    answer = qa["answers"][0]
    assert P.rule_scores(qa, f"It is {answer}.") == {"correct": 1, "concise": 1, "language": 1, "declines": 1,
                                                     "private": 1, "honest": 1}
    assert P.gold_reward(qa, "The question cannot be answered.") == 0.5 + 0.75 + 1.5 + 2.0 + 1.0  # not correct
    leak = P.rank(pii)[-1]["text"]
    assert pii["private"][0] in leak and find_pii(pii["messages"][1]["content"])  # chapter 02 finds it
    assert P.rule_scores(pii, leak)["private"] == 0 and P.rule_scores(pii, leak)["declines"] == 0
    assert P.gold_reward(qa, f"It is {answer}.", rules=P.HELPFULNESS) == 2.0 + 0.5 + 0.75
    assert P.gold_reward(pii, leak, rules=P.HARMLESSNESS) == 0.0
    assert not P.states("born in 19411.", "1941") and P.states("1941년", "1941")


def test_rankings_become_n_choose_2_pairs_split_by_prompt(prompts):
    for n in (2, 4, 5):
        pairs = P.comparisons(prompts, n=n)
        assert len(pairs) == len(prompts) * math.comb(n, 2)
        assert all(p["margin"] > 0 and not p["flipped"] for p in pairs)
    train, test = P.split_pairs(P.comparisons(prompts))
    assert train and test and not {p["prompt_id"] for p in train} & {p["prompt_id"] for p in test}
    example = P.preference_example(train[0])
    assert example["prompt"].endswith("<|assistant|>") and example["chosen"].endswith("<|end|>")


def test_label_noise_flips_its_share_of_pairs(prompts):
    clean = P.comparisons(prompts)
    noisy = P.comparisons(prompts, label_noise=0.2)
    flipped = [(c, d) for c, d in zip(clean, noisy) if d["flipped"]]
    assert len(flipped) == round(0.2 * len(clean))
    assert all(d["chosen"] == c["rejected"] and d["margin"] == -c["margin"] for c, d in flipped)
    assert P.comparisons(prompts, label_noise=0.2, seed=1) != noisy


def test_bad_preference_input_names_the_problem(prompts):
    with pytest.raises(ValueError, match="unknown rule.*'kind'"):
        P.gold_reward(prompts[0], "x", rules=("correct", "kind"))
    for noise in (-0.1, 0.6):
        with pytest.raises(ValueError, match="label_noise must be in"):
            P.comparisons(prompts, label_noise=noise)
    with pytest.raises(ValueError, match="n must be an int in"):
        P.comparisons(prompts, n=1)
    with pytest.raises(ValueError, match="response is empty"):
        P.gold_reward(prompts[0], "  ")
    twin = {**prompts[0], "responses": [prompts[0]["responses"][0]] * 2}
    with pytest.raises(ValueError, match=f"prompt {prompts[0]['id']!r}.*tie"):
        P.rank(twin)
    with pytest.raises(ValueError, match="identical"):
        P.preference_example({"prompt_id": "x", "messages": [], "chosen": "a", "rejected": "a"})


# --------------------------------------------------------------------------- Bradley-Terry


def style_pairs(prompts, noise):
    """(winner, loser) by style position: 0 is the best style of its prompt kind."""
    pairs = P.comparisons(prompts, label_noise=noise)
    index = {(k, s): i for k, styles in P.STYLES.items() for i, s in enumerate(styles)}
    return [(index[p["kind"], p["chosen_style"]], index[p["kind"], p["rejected_style"]]) for p in pairs]


def test_preference_probability_is_a_sigmoid_of_the_difference():
    assert BT.preference_probability(1.0, 1.0) == 0.5
    assert BT.preference_probability(math.log(3), 0.0) == pytest.approx(0.75)
    assert torch.allclose(BT.preference_probability(torch.tensor([2.0]), torch.tensor([0.0])), torch.sigmoid(torch.tensor([2.0])))


def test_bradley_terry_fit_agrees_with_logistic_regression(prompts):
    from sklearn.linear_model import LogisticRegression

    pairs = style_pairs(prompts, noise=0.2)
    scores = BT.fit_scores(pairs, 5)
    x = np.zeros((len(pairs), 5))
    for k, (w, l) in enumerate(pairs):
        x[k, w], x[k, l] = 1.0, -1.0
    # P(y=1) = sigma(x . r): each pair once as a win, once mirrored as a loss (same likelihood, two classes)
    fit = LogisticRegression(C=np.inf, fit_intercept=False, tol=1e-12, max_iter=10_000)
    fit.fit(np.vstack([x, -x]), np.r_[np.ones(len(pairs)), np.zeros(len(pairs))])
    theirs = fit.coef_[0] - fit.coef_[0].mean()
    assert np.allclose(scores.numpy(), theirs, atol=1e-4), (scores, theirs)
    assert torch.all(scores[:-1] > scores[1:])  # the rules' order comes back through the noise


def test_bradley_terry_recovers_known_scores_and_refuses_an_item_that_never_wins():
    truth = torch.tensor([1.0, 0.0, -0.5, -0.5], dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    pairs = []
    for _ in range(6000):
        a, b = torch.randperm(4, generator=g)[:2].tolist()
        win = torch.rand(1, generator=g).item() < BT.preference_probability(truth[a].item(), truth[b].item())
        pairs.append((a, b) if win else (b, a))
    fitted = BT.fit_scores(pairs, 4)
    assert torch.allclose(fitted, truth - truth.mean(), atol=0.08), fitted
    assert BT.log_likelihood(fitted, pairs) >= BT.log_likelihood(truth, pairs)  # the maximum of the likelihood
    with pytest.raises(ValueError, match=r"items \[2\] never win"):
        BT.fit_scores([(0, 1), (1, 0), (0, 2)], 3)
    assert torch.isfinite(BT.fit_scores([(0, 1), (1, 0), (0, 2)], 3, prior=1.0)).all()
    with pytest.raises(ValueError, match="pair 0: item 1 is compared with itself"):
        BT.fit_scores([(1, 1)], 3)
