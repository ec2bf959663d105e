"""Chapter 07's preference data, Bradley-Terry fit and losses: hand-computed values, and agreement with
scikit-learn (Bradley-Terry) and TRL (``DPOTrainer``, ``RewardTrainer``) on the same data."""

import copy
import math

import numpy as np
import pytest
import torch

from course_lib.alignment import bradley_terry as BT
from course_lib.alignment import losses as L
from course_lib.alignment import preferences as P
from course_lib.alignment.reward_model import last_token_rewards, reward_model_from
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
    two = torch.tensor([2.0])
    assert torch.allclose(BT.preference_probability(two, torch.zeros(1)), torch.sigmoid(two))


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


# --------------------------------------------------------------------------- PPO pieces, by hand


def test_kl_estimators_by_hand_and_on_average():
    logp, ref = torch.tensor([math.log(0.5)]), torch.tensor([math.log(0.25)])
    assert L.kl_k1(logp, ref).item() == pytest.approx(math.log(2))
    assert L.kl_k3(logp, ref).item() == pytest.approx(-0.5 + math.log(2))  # ratio 1/2: (1/2 - 1) - log(1/2)
    p, q = torch.tensor([0.6, 0.3, 0.1]), torch.tensor([0.2, 0.5, 0.3])
    kl = float((p * (p / q).log()).sum())
    tokens = torch.multinomial(p, 200_000, replacement=True, generator=torch.Generator().manual_seed(0))
    k1, k3 = L.kl_k1(p.log()[tokens], q.log()[tokens]), L.kl_k3(p.log()[tokens], q.log()[tokens])
    assert k1.mean().item() == pytest.approx(kl, abs=0.01) and k3.mean().item() == pytest.approx(kl, abs=0.01)
    assert (k1 < 0).any() and (k3 >= 0).all() and k3.var() < k1.var()


def test_kl_penalized_rewards_put_the_score_on_the_last_response_token():
    rewards = L.kl_penalized_rewards(torch.tensor([2.0]), torch.tensor([[-1.0, -1.0, -1.0, -2.0]]),
                                     torch.tensor([[-1.5, -1.0, -0.5, -2.0]]), torch.tensor([[0, 1, 1, 0]]), beta=0.1)
    assert torch.allclose(rewards, torch.tensor([[0.0, 0.0, 2.05, 0.0]]))
    with pytest.raises(ValueError, match="beta must be a positive number"):
        L.kl_penalized_rewards(torch.zeros(1), torch.zeros(1, 2), torch.zeros(1, 2), torch.ones(1, 2), beta=0)
    with pytest.raises(ValueError, match=r"rows \[0\] have no response tokens"):
        L.kl_penalized_rewards(torch.zeros(1), torch.zeros(1, 2), torch.zeros(1, 2), torch.zeros(1, 2), beta=0.1)


def test_gae_on_a_three_step_episode():
    rewards, values = torch.tensor([[1.0, 0.0, 2.0]]), torch.tensor([[0.5, 1.0, 1.5]])
    advantages, returns = L.gae(rewards, values, gamma=0.9, lam=0.8)
    # delta_2 = 2 - 1.5 = 0.5; delta_1 = 0 + 0.9 * 1.5 - 1 = 0.35; delta_0 = 1 + 0.9 * 1 - 0.5 = 1.4
    # A_2 = 0.5; A_1 = 0.35 + 0.72 * 0.5 = 0.71; A_0 = 1.4 + 0.72 * 0.71 = 1.9112
    assert torch.allclose(advantages, torch.tensor([[1.9112, 0.71, 0.5]]))
    assert torch.allclose(returns, torch.tensor([[2.4112, 1.71, 2.0]]))
    padded, _ = L.gae(torch.tensor([[1.0, 0.0, 2.0, 9.0]]), torch.tensor([[0.5, 1.0, 1.5, 9.0]]),
                      mask=torch.tensor([[1, 1, 1, 0]]), gamma=0.9, lam=0.8)
    assert torch.allclose(padded, torch.tensor([[1.9112, 0.71, 0.5, 0.0]]))  # padding passes nothing back
    mc, _ = L.gae(rewards, values, gamma=1.0, lam=1.0)
    assert torch.allclose(mc, torch.tensor([[3.0, 2.0, 2.0]]) - values)  # lambda = 1: return minus value


def test_clipped_policy_loss_on_both_sides_of_the_clip():
    old = torch.zeros(4)
    logp = torch.log(torch.tensor([1.5, 0.5, 1.5, 0.5])).requires_grad_()
    advantages = torch.tensor([1.0, 1.0, -1.0, -1.0])
    per_token = [L.clipped_policy_loss(logp[i : i + 1], old[i : i + 1], advantages[i : i + 1]).item()
                 for i in range(4)]
    # A > 0: the gain stops at ratio 1.2, a loss is counted in full; A < 0: the other way round
    assert per_token == pytest.approx([-1.2, -0.5, 1.5, 0.8])
    L.clipped_policy_loss(logp, old, advantages).backward()
    assert logp.grad[0] == 0 and logp.grad[3] == 0 and logp.grad[1] != 0 and logp.grad[2] != 0


def test_clipped_value_loss_and_entropy_by_hand():
    old, returns = torch.tensor([1.0, 1.0, 1.0]), torch.tensor([2.0, 2.0, 2.0])
    values = torch.tensor([1.5, 0.9, 3.0])
    each = [L.clipped_value_loss(values[i : i + 1], old[i : i + 1], returns[i : i + 1]).item() for i in range(3)]
    # 1.5 clips to 1.2: max(0.25, 0.64) / 2; 0.9 is inside: 1.21 / 2; 3.0 clips to 1.2: max(1, 0.64) / 2
    assert each == pytest.approx([0.32, 0.605, 0.5])
    assert L.entropy(torch.zeros(4)).item() == pytest.approx(math.log(4))
    assert L.entropy(torch.tensor([0.0, -1e4])).item() == pytest.approx(0.0, abs=1e-6)


def test_reward_and_dpo_losses_by_hand():
    assert L.reward_loss(torch.tensor([1.0]), torch.tensor([1.0])).item() == pytest.approx(math.log(2))
    margin = L.reward_loss(torch.tensor([2.0]), torch.tensor([1.0]), margin=torch.tensor([1.0]))
    assert margin.item() == pytest.approx(math.log(2))  # LLaMA-2's margin: a clear preference must win by more
    same = torch.tensor([-3.0, -7.0])
    loss, chosen, rejected = L.dpo_loss(same, same + 1, same, same + 1, beta=0.1)
    assert loss.item() == pytest.approx(L.LN2) and not chosen.any() and not rejected.any()  # policy = reference
    loss, chosen, rejected = L.dpo_loss(torch.tensor([-1.0]), torch.tensor([-4.0]), torch.tensor([-2.0]),
                                        torch.tensor([-2.0]), beta=0.5)
    assert (chosen.item(), rejected.item()) == (0.5, -1.0)
    assert loss.item() == pytest.approx(-math.log(1 / (1 + math.exp(-1.5))))
    for beta in (0, -0.1):
        with pytest.raises(ValueError, match="beta must be a positive number"):
            L.dpo_loss(same, same, same, same, beta=beta)


# --------------------------------------------------------------------------- against TRL


@pytest.fixture(scope="module")
def batch_pairs(prompts):
    train, _ = P.split_pairs(P.comparisons(prompts, label_noise=0.2))
    return [P.preference_example(p) for p in train[::37][:4]]


def test_dpo_loss_agrees_with_trl(tiny, batch_pairs, tmp_path):
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    tokenizer, decoder = tiny
    policy, reference = copy.deepcopy(decoder), copy.deepcopy(decoder)
    with torch.no_grad():  # a policy that has moved away from its reference
        g = torch.Generator().manual_seed(1)
        for p in policy.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    args = DPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, beta=0.3, per_device_train_batch_size=4,
                     report_to="none", save_strategy="no", disable_tqdm=True, activation_checkpointing=False)
    trainer = DPOTrainer(model=policy, ref_model=reference, args=args, processing_class=tokenizer,
                         train_dataset=Dataset.from_list(batch_pairs))
    batch = next(iter(trainer.get_train_dataloader()))
    theirs = trainer.compute_loss(trainer.model, batch)
    with torch.no_grad():
        ids, attention, completion = batch["input_ids"], batch["attention_mask"], batch["completion_mask"]
        policy_logps = L.completion_logps(policy(input_ids=ids, attention_mask=attention).logits, ids, completion)
        ref_logps = L.completion_logps(reference(input_ids=ids, attention_mask=attention).logits, ids, completion)
    mine, _, _ = L.dpo_loss(*policy_logps.chunk(2), *ref_logps.chunk(2), beta=0.3)  # the batch is [chosen, rejected]
    assert abs(mine.item() - math.log(2)) > 0.01  # the policy has moved: a test of more than ln 2
    assert mine.item() == pytest.approx(theirs.item(), abs=1e-6)


def test_reward_loss_agrees_with_trl(tiny, batch_pairs, tmp_path):
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer

    tokenizer, decoder = tiny
    model = reward_model_from(decoder)
    assert model.config.num_labels == 1
    assert torch.equal(model.model.embed_tokens.weight, decoder.model.embed_tokens.weight)
    rows = [{"chosen": p["prompt"] + p["chosen"], "rejected": p["prompt"] + p["rejected"], "margin": 0.5}
            for p in batch_pairs]
    args = RewardConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, per_device_train_batch_size=4,
                        report_to="none", save_strategy="no", disable_tqdm=True, activation_checkpointing=False)
    trainer = RewardTrainer(model=model, args=args, processing_class=tokenizer, train_dataset=Dataset.from_list(rows))
    batch = next(iter(trainer.get_train_dataloader()))
    assert "margin" in batch
    theirs = trainer.compute_loss(trainer.model, dict(batch))
    with torch.no_grad():
        rewards = last_token_rewards(model, batch["input_ids"], batch["attention_mask"])
        assert torch.allclose(rewards, model(input_ids=batch["input_ids"],
                                             attention_mask=batch["attention_mask"]).logits.squeeze(-1), atol=1e-6)
    mine = L.reward_loss(*rewards.chunk(2), margin=batch["margin"])
    assert mine.item() == pytest.approx(theirs.item(), abs=1e-6)


# --------------------------------------------------------------------------- best-of-n (over-optimisation)


def test_best_of_n_expectation_by_hand_and_by_enumeration():
    import itertools
    import random

    from course_lib.alignment.overoptimisation import best_of_n_expectation, bon_kl, turning_point

    proxy, gold = [0.1, 0.3, 0.2], [1.0, 2.0, 3.0]
    assert best_of_n_expectation(proxy, gold, 1) == pytest.approx((0.2, 2.0))  # n = 1: the plain mean
    assert best_of_n_expectation(proxy, gold, 3) == pytest.approx((0.3, 2.0))  # n = N: the proxy's favourite
    # n = 2: {0,1} keeps 1 (gold 2), {0,2} keeps 2 (gold 3), {1,2} keeps 1 (gold 2)
    assert best_of_n_expectation(proxy, gold, 2) == pytest.approx(((0.3 + 0.2 + 0.3) / 3, 7 / 3))
    rng = random.Random(0)
    proxy, gold = [rng.random() for _ in range(7)], [rng.random() for _ in range(7)]
    for n in range(1, 8):
        kept = [max(c, key=lambda i: proxy[i]) for c in itertools.combinations(range(7), n)]
        expected = (sum(proxy[i] for i in kept) / len(kept), sum(gold[i] for i in kept) / len(kept))
        assert best_of_n_expectation(proxy, gold, n) == pytest.approx(expected)
    assert bon_kl(1) == 0.0 and bon_kl(2) == pytest.approx(math.log(2) - 0.5)
    with pytest.raises(ValueError, match=r"n must be an int in \[1, 7\]"):
        best_of_n_expectation(proxy, gold, 8)
    curve = [{"proxy": 0.0, "gold": 1.0}, {"proxy": 1.0, "gold": 2.0}, {"proxy": 2.0, "gold": 1.5}]
    assert turning_point(curve) == {"peak": curve[1], "last": curve[2], "gold_falls": True, "proxy_rises": True}
