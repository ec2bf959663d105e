"""Chapter 07's training on the ci profile: reward models and DPO with the course loop, ``aligned``, bad input.

The ci models are tiny and briefly trained: these tests check the direction of each
effect with a margin; the laptop numbers are in the issue's closing note.
"""

import copy
import math

import pytest
import torch

from course_lib import zoo
from course_lib.alignment import dpo as D
from course_lib.alignment import preferences as P
from course_lib.alignment import reward_model as R
from course_lib.alignment.aligned import held_out_prompts, results
from course_lib.alignment.reward_experiments import preference_data
from course_lib.instruction.formatting import add_chat_template

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "alignment-cache"))


@pytest.fixture(scope="module")
def instruct(ci, tmp_path_factory):
    """ci's instruct in a cache of this module's own, kept for the module's other artifacts and restored after it."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COURSE_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "alignment-cache"))
        model = zoo.get("instruct", ci)
        add_chat_template(model.tokenizer)
        yield model


@pytest.fixture(scope="module")
def prompts(ci):
    return preference_data(ci)


@pytest.fixture(scope="module")
def reward_models(ci, instruct):
    return zoo.get("reward-models", ci)


# --------------------------------------------------------------------------- reward models


def test_reward_model_ranks_held_out_pairs_above_chance(ci, instruct, prompts, reward_models):
    combined = reward_models["results"]["combined"]
    assert combined["n"] > 100 and combined["ceiling"] == 1.0
    assert combined["accuracy"] > 0.6, combined  # chance is 0.5
    losses = [r["loss"] for r in reward_models["results"]["log"] if "loss" in r]
    assert abs(losses[0] - math.log(2)) < 0.05  # a fresh, small head scores every response about alike
    assert sum(losses[-10:]) / 10 < math.log(2) - 0.1
    _, test = P.split_pairs(P.comparisons(prompts))
    again = R.pair_accuracy(reward_models["model"], reward_models["tokenizer"], test)
    assert again["accuracy"] == pytest.approx(combined["accuracy"])  # the stored model is the one scored


def test_label_noise_lowers_accuracy_towards_its_ceiling(reward_models):
    curve = {r["noise"]: r for r in reward_models["results"]["noise_curve"]}
    clean, noisy = curve[0.0], curve[max(curve)]
    assert abs(noisy["ceiling"] - (1 - max(curve))) < 0.06  # the held-out share of flipped labels
    assert noisy["accuracy"] < clean["accuracy"] - 0.05
    assert noisy["accuracy"] <= noisy["ceiling"] + 0.02
    assert noisy["gold_accuracy"] > noisy["accuracy"]  # against the rules it is better than against noisy labels


def test_more_comparisons_give_a_better_reward_model(reward_models):
    curve = sorted(reward_models["results"]["comparisons_curve"], key=lambda r: r["comparisons"])
    assert curve[0]["comparisons"] < curve[-1]["comparisons"]
    assert curve[-1]["accuracy"] > curve[0]["accuracy"]


def test_separate_reward_models_each_win_on_their_own_rules(reward_models):
    acc = reward_models["results"]["helpful_vs_safe"]["accuracy"]
    assert acc["helpful"]["helpful"] > acc["safe"]["helpful"]
    assert acc["safe"]["safe"] > acc["helpful"]["safe"]
    assert set(acc) == {"helpful", "safe", "combined", "two-model"}


# --------------------------------------------------------------------------- DPO and aligned


@pytest.fixture(scope="module")
def aligned(ci, instruct):
    return zoo.get("aligned", ci)


def test_dpo_starts_at_ln2_and_the_margin_rises(ci, aligned):
    log = results(ci)["dpo_log"]
    assert len(log) == ci.alignment.dpo.max_steps
    assert log[0]["dpo_loss"] == pytest.approx(math.log(2), abs=1e-5)  # policy = reference at the first step
    w = ci.alignment.dpo_sft_weight  # the loss adds w times the chosen responses' token NLL (RPO)
    assert log[0]["loss"] == pytest.approx(log[0]["dpo_loss"] + w * log[0]["sft_loss"], rel=1e-5)
    assert abs(log[0]["margin"]) < 1e-4
    late = log[-5:]
    assert sum(r["margin"] for r in late) / len(late) > 0.5
    assert sum(r["dpo_loss"] for r in late) / len(late) < math.log(2) - 0.1


def test_aligned_is_a_causal_lm_that_beats_instruct_on_held_out_preferences(ci, instruct, aligned):
    out = results(ci)
    assert type(aligned.model).__name__ == "LlamaForCausalLM"
    assert aligned.tokenizer.get_vocab() == instruct.tokenizer.get_vocab()
    assert out["held_out_implicit_reward"]["accuracy"] > 0.6  # DPO's own reward ranks unseen pairs
    assert out["policy"]["gold"] > out["instruct"]["gold"]  # the rules' reward of greedy answers rises
    mean, low, high = out["policy"]["gain"]
    assert low <= mean <= high and mean == pytest.approx(out["policy"]["gold"] - out["instruct"]["gold"])
    assert out["kl"] > 0.01  # it moved away from instruct, and says how far
    assert len(out["rows"]["policy"]) == len(held_out_prompts(ci))


def test_aligned_is_the_best_candidate_within_the_kl_budget(ci, aligned):
    from course_lib.alignment.aligned import choose

    out = results(ci)
    rows = out["candidates"]
    assert [r["method"] for r in rows] == ["dpo"] + ["ppo"] * len(ci.alignment.ppo_betas)
    assert all(r["within_budget"] == (r["kl"] <= out["kl_budget"]) for r in rows)
    assert out["chosen"] == choose(rows) and out["method"] == out["chosen"]["method"]
    assert out["policy"]["gold"] == pytest.approx(out["chosen"]["gold"]) and out["kl"] == pytest.approx(out["chosen"]["kl"])
    sweep = zoo.get("ppo-sweep", ci)  # the PPO policies are kept, so aligned can be any of them
    assert all((zoo.path("ppo-sweep", ci) / f"beta-{r['beta']:g}" / "final" / "config.json").exists() for r in sweep["runs"])
    assert (aligned.path / "final" / "model.safetensors").exists() and (aligned.path / "metrics.jsonl").exists()
    by_hand = [{"method": "dpo", "gold": 5.0, "kl": 3.0, "within_budget": True},
               {"method": "ppo", "gold": 6.0, "kl": 9.0, "within_budget": False},
               {"method": "ppo", "gold": 5.5, "kl": 2.0, "within_budget": True}]
    assert choose(by_hand) == by_hand[2]  # the best gold reward among those within the budget
    with pytest.warns(UserWarning, match="no policy is within the KL budget"):
        assert choose([{**r, "within_budget": False} for r in by_hand])["kl"] == 2.0  # then the closest to instruct


def test_sequence_kl_of_a_model_to_itself_is_zero(instruct, prompts):
    test = [p for p in prompts if p["split"] == "test"][:4]
    kl = D.sequence_kl(instruct.model, copy.deepcopy(instruct.model), instruct.tokenizer, test, max_new_tokens=8)
    assert kl == pytest.approx(0.0, abs=1e-5)


def test_dpo_loss_module_agrees_with_the_loss_on_its_logps(instruct, prompts):
    train, _ = P.split_pairs(P.comparisons(prompts))
    rows = D.dpo_rows(instruct.model, instruct.tokenizer, train[:4])
    batch = D.collate_dpo(rows, instruct.tokenizer.pad_token_id)
    policy = copy.deepcopy(instruct.model)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=torch.Generator().manual_seed(0)))
        out = D.DPOLoss(policy, beta=0.5)(**batch)
        chosen = D.sequence_logps(policy, [r["chosen"] for r in rows], instruct.tokenizer.pad_token_id)
        rejected = D.sequence_logps(policy, [r["rejected"] for r in rows], instruct.tokenizer.pad_token_id)
    ref = torch.tensor([[r["ref_chosen"], r["ref_rejected"]] for r in rows])
    expected = -torch.nn.functional.logsigmoid(0.5 * ((chosen - ref[:, 0]) - (rejected - ref[:, 1]))).mean()
    assert out.loss.item() == pytest.approx(expected.item(), abs=1e-5)
    with torch.no_grad():  # RPO: plus the chosen responses' mean token NLL, times the weight
        rpo = D.DPOLoss(policy, beta=0.5, sft_weight=0.3)(**batch).loss
    tokens = torch.tensor([int(r["chosen"]["completion_mask"].sum()) for r in rows])
    assert rpo.item() == pytest.approx(expected.item() + 0.3 * (-chosen / tokens).mean().item(), abs=1e-5)


# --------------------------------------------------------------------------- bad input


def test_bad_alignment_input_is_a_named_error(instruct, prompts, tmp_path):
    pair = P.comparisons(prompts[:1])[0]
    with pytest.raises(ValueError, match=f"pair 0 \\(prompt {pair['prompt_id']!r}\\).*identical"):
        R.pair_rows(instruct.tokenizer, [{**pair, "rejected": pair["chosen"]}])
    with pytest.raises(ValueError, match="assistant's response is empty"):
        R.pair_rows(instruct.tokenizer, [{**pair, "rejected": "  "}])
    for beta in (0, -0.5):
        with pytest.raises(ValueError, match="beta must be a positive number"):
            D.DPOLoss(instruct.model, beta=beta)
        with pytest.raises(ValueError, match="beta must be a positive number"):
            D.train_dpo(instruct, instruct.tokenizer, [pair], None, beta=beta, output_dir=tmp_path)
    with pytest.raises(ValueError, match="sft_weight must be >= 0"):
        D.DPOLoss(instruct.model, beta=0.1, sft_weight=-1.0)
    other = copy.deepcopy(instruct.tokenizer)
    other.add_tokens(["<|new|>"])
    with pytest.raises(ValueError, match="tokenizer .* differs from the policy's"):
        R.check_same_tokenizer(instruct.tokenizer, other)
    R.check_same_tokenizer(instruct.tokenizer, copy.deepcopy(instruct.tokenizer))


# --------------------------------------------------------------------------- PPO


def test_ppo_raises_the_reward_models_score_and_a_looser_leash_goes_further(ci, instruct, reward_models):
    sweep = zoo.get("ppo-sweep", ci)
    runs = {r["beta"]: r for r in sweep["runs"]}
    tight, loose = runs[max(runs)], runs[min(runs)]
    for run in runs.values():
        assert len(run["log"]) == ci.alignment.ppo_iterations and run["log"][0]["kl"] == pytest.approx(0, abs=1e-5)
    quarter = len(loose["log"]) // 4  # PPO's objective: the reward model's score of the policy's own samples
    early, late = (sum(r["score"] for r in part) / quarter for part in (loose["log"][:quarter], loose["log"][-quarter:]))
    assert late > early + 0.1, (early, late)
    assert loose["kl"] > tight["kl"] + 1.0  # beta is the leash: a small one lets the policy drift further


def test_best_of_n_shows_the_proxy_rising_while_the_gold_reward_falls(ci, reward_models):
    """Gao et al.'s over-optimisation: pushing harder on the reward model (more samples to pick from, more KL)
    keeps raising its score, while the rules' reward of what it picks turns down."""
    from course_lib.alignment.overoptimisation import turning_point

    out = zoo.get("ppo-sweep", ci)["best_of_n"]
    curve = out["curve"]
    assert [r["n"] for r in curve] == [2**k for k in range(len(curve))] and curve[-1]["n"] == ci.alignment.bon_samples
    assert out["prompts"] == len(held_out_prompts(ci))
    proxies, kls = [r["proxy"] for r in curve], [r["kl"] for r in curve]
    assert all(b >= a for a, b in zip(proxies, proxies[1:])) and proxies[-1] > proxies[0] + 0.5  # never falls
    assert kls == sorted(kls) and kls[0] == 0.0
    turn = turning_point(curve)
    assert turn["gold_falls"] and turn["proxy_rises"], turn
    assert turn["peak"]["gold"] - turn["last"]["gold"] > 0.05  # a fall larger than rounding


def test_ppo_refuses_a_reward_model_with_another_tokenizer_and_a_non_positive_beta(instruct, reward_models, prompts):
    from course_lib.alignment.ppo import PPOConfig, train_ppo

    other = copy.deepcopy(reward_models["tokenizer"])
    other.add_tokens(["<|new|>"])
    with pytest.raises(ValueError, match="reward model's tokenizer .* differs from the policy's"):
        train_ppo(instruct, instruct.tokenizer, reward_models["model"], other, prompts, PPOConfig(iterations=1))
    with pytest.raises(ValueError, match="beta must be a positive number"):
        train_ppo(instruct, instruct.tokenizer, reward_models["model"], reward_models["tokenizer"], prompts,
                  PPOConfig(beta=0.0, iterations=1))


# --------------------------------------------------------------------------- arena


def test_elo_and_bradley_terry_by_hand():
    from course_lib.alignment import arena

    one = [{"a": "x", "b": "y", "prompt": 0, "winner": "x"}]
    assert arena.elo_ratings(one, ["x", "y"], k=4) == {"x": 1002.0, "y": 998.0}  # expected score 0.5: K/2 each way
    tie = [{"a": "x", "b": "y", "prompt": 0, "winner": "tie"}]
    assert arena.elo_ratings(tie, ["x", "y"]) == {"x": 1000.0, "y": 1000.0}
    # x beats y 3 times in 4: with no prior the Bradley-Terry gap is ln 3, i.e. 400 log10(3) Elo points
    fights = one * 3 + [{"a": "x", "b": "y", "prompt": 1, "winner": "y"}]
    rated = arena.bt_ratings(fights, ["x", "y"], resamples=50, prior=1e-9)
    assert rated["x"]["rating"] - rated["y"]["rating"] == pytest.approx(400 * math.log10(3), abs=0.01)
    assert rated["x"]["low"] <= rated["x"]["rating"] <= rated["x"]["high"]
    judged = arena.battles({"x": [{"gold": 1.0}, {"gold": 2.0}], "y": [{"gold": 1.0}, {"gold": 3.0}]},
                           lambda m, i: {"x": [1.0, 2.0], "y": [1.0, 3.0]}[m][i])
    assert [b["winner"] for b in judged] == ["tie", "y"]
    assert arena.win_rates(judged, ["x", "y"]) == {"x": {"y": 0.25}, "y": {"x": 0.75}}
    with pytest.raises(ValueError, match="no battles"):
        arena.bt_ratings([], ["x", "y"])


def test_arena_rates_the_models_with_intervals(ci, instruct, aligned, reward_models):
    out = zoo.get("arena", ci)
    assert out["models"] == ["base", "instruct", "aligned"]
    for judge in ("gold", "reward_model"):
        bt = out["judges"][judge]["bradley_terry"]
        assert all(r["low"] <= r["rating"] <= r["high"] for r in bt.values())
        assert out["judges"][judge]["battles"] == 3 * out["prompts"]
    gold = out["judges"]["gold"]
    assert gold["bradley_terry"]["aligned"]["rating"] > gold["bradley_terry"]["instruct"]["rating"]
    assert gold["win_rates"]["aligned"]["instruct"] > 0.5


def test_pairs_too_long_for_the_model_are_counted_when_left_out(ci, instruct):
    pairs = P.comparisons(preference_data(ci), seed=0)[:4]
    with pytest.warns(UserWarning, match=r"4 of 4 pairs are longer than max_len=2 tokens and were left out"):
        assert R.pair_rows(add_chat_template(instruct.tokenizer), pairs, max_len=2) == []
