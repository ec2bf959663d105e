"""Chapter 07's PPO against TRL's GRPO and RLOO on the ci profile: the trainers as set up, the reward function,
the ``rl-comparison`` artifact, bad input."""

import copy
import math

import pytest
import torch

from course_lib import zoo
from course_lib.alignment import trl_policy as T
from course_lib.alignment.dpo import reply_reward
from course_lib.alignment.reward_experiments import training_prompts
from course_lib.alignment.reward_model import last_token_rewards, score_responses
from course_lib.instruction.formatting import END_TOKEN, render_chat
from test_alignment_training import cache, instruct, reward_models  # noqa: F401  (chapter 07's ci cache and models)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def prompts(ci):
    return training_prompts(ci)


def tiny(instruct, reward_models, prompts, tmp_path, **kw):
    """The keywords of a two-step run: 4 prompts x 2 completions per step."""
    return dict(instruct=instruct, tokenizer=instruct.tokenizer, reward_model=reward_models["model"],
                reward_tokenizer=reward_models["tokenizer"], prompts=prompts, beta=0.2, steps=2, batch_size=8,
                num_generations=2, lr=1e-3, max_new_tokens=8, seed=0, output_dir=tmp_path, **kw)


@pytest.mark.parametrize("method", T.METHODS)
def test_trl_trains_a_copy_of_instruct_with_finite_logs(method, instruct, reward_models, prompts, tmp_path):
    before = {k: v.clone() for k, v in instruct.model.state_dict().items()}
    policy, log = T.train_trl_policy(**tiny(instruct, reward_models, prompts, tmp_path, method=method,
                                            gold=reply_reward))
    assert policy is not instruct.model
    moved = max((p - before[k]).abs().max().item() for k, p in policy.state_dict().items())
    assert moved > 1e-4  # the policy was trained ...
    assert all(torch.equal(v, before[k]) for k, v in instruct.model.state_dict().items())  # ... instruct was not
    assert [r["step"] for r in log] == [1, 2]
    for row in log:  # num_iterations 1: every step samples
        assert all(math.isfinite(row[k]) for k in ("score", "gold", "loss", "length", "kl")), row
        assert 0 < row["length"] <= 8
    assert log[0]["kl"] == pytest.approx(0.0, abs=1e-5)  # the first samples come from the reference itself


@pytest.mark.parametrize("method", T.METHODS)
def test_trainer_settings_are_the_ones_passed(method, instruct, reward_models, prompts, tmp_path):
    trainer = T.trl_trainer(**tiny(instruct, reward_models, prompts, tmp_path, method=method, num_iterations=2,
                                   gold=reply_reward))
    args = trainer.args
    assert (args.beta, trainer.beta, args.num_generations, args.max_steps, args.num_iterations) == (0.2, 0.2, 2, 4, 2)
    assert (args.learning_rate, args.lr_scheduler_type, args.max_completion_length) == (1e-3, "constant", 8)
    assert list(args.reward_weights) == [1.0, 0.0] and trainer.reward_func_names == ["reward_model", "gold"]
    assert not args.use_vllm and args.report_to in ([], "none", ["none"]) and args.save_strategy == "no"
    if method == "grpo":  # set explicitly: TRL 1.16's defaults, except beta (its default is 0)
        assert (args.loss_type, args.scale_rewards, trainer.loss_type) == ("dapo", "group", "dapo")
    else:
        assert args.normalize_advantages is False
    # generation stops at the course's <|end|>, as PPO's rollout does
    assert instruct.tokenizer.convert_tokens_to_ids(END_TOKEN) in trainer.eos_token_ids
    # the reference is instruct, frozen
    reference = dict(trainer.ref_model.named_parameters())
    assert all(torch.equal(p, reference[k]) for k, p in instruct.model.named_parameters())
    # TRL renders a conversational prompt with the chat template: the ids PPO's rollout feeds the policy
    messages = prompts[0]["messages"]
    ids = instruct.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                 return_dict=True)["input_ids"]
    assert list(ids) == instruct.tokenizer(render_chat(messages, add_generation_prompt=True),
                                           add_special_tokens=False)["input_ids"]


def test_the_reward_function_is_score_responses_and_gold_is_reply_reward(instruct, reward_models, prompts):
    model, tokenizer = reward_models["model"], reward_models["tokenizer"]
    rows = prompts[:3]
    replies = [r["reference"] for r in rows]
    score, gold = T.reward_functions(model, tokenizer, rows, gold=reply_reward)
    conversations = [r["messages"] for r in rows]
    completions = [[{"role": "assistant", "content": f" {reply} "}] for reply in replies]
    expected = score_responses(model, tokenizer, conversations, replies)
    assert score(prompts=conversations, completions=completions) == pytest.approx(expected.tolist(), abs=1e-6)
    assert gold(prompts=conversations, completions=completions, id=[r["id"] for r in rows]) == \
        [reply_reward(r, reply) for r, reply in zip(rows, replies)]
    # an empty reply (the policy stopped at once) is scored as PPO scores it: the empty assistant turn
    ids = tokenizer(render_chat(conversations[0], add_generation_prompt=True) + END_TOKEN, return_tensors="pt",
                    add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        empty = last_token_rewards(model, ids, torch.ones_like(ids)).item()
    assert score(prompts=conversations[:1], completions=[[{"role": "assistant", "content": ""}]]) == \
        pytest.approx([empty], abs=1e-6)


def test_rl_comparison_has_ppo_grpo_rloo_and_dpo_on_one_budget(ci, instruct, reward_models):
    out = zoo.get("rl-comparison", ci)
    runs = {r["method"]: r for r in out["runs"]}
    assert list(runs) == ["ppo", "grpo", "rloo", "dpo"]
    p = ci.alignment
    assert out["budget"] == {"completions": p.compare_iterations * p.ppo_batch_size,
                             "optimizer_steps": p.compare_iterations * 2}
    for method, run in runs.items():
        assert math.isfinite(run["gold"]) and run["kl"] >= 0 and run["seconds"] > 0, method
        mean, low, high = run["summary"]["gain"]
        assert low <= mean <= high and mean == pytest.approx(run["gold"] - out["instruct"]["gold"])
    for method in ("ppo", "grpo", "rloo"):
        assert runs[method]["settings"]["beta"] == p.compare_beta
        assert math.isfinite(runs[method]["score"])
    assert len(runs["ppo"]["log"]) == p.compare_iterations
    assert len(runs["grpo"]["log"]) == len(runs["rloo"]["log"]) == out["budget"]["optimizer_steps"]
    assert runs["grpo"]["settings"]["loss_type"] == "dapo"
    assert all(runs[m]["kl"] > 0.01 for m in runs)  # each moved away from instruct


def test_bad_trl_input_is_a_named_error(instruct, reward_models, prompts, tmp_path):
    other = copy.deepcopy(reward_models["tokenizer"])
    other.add_tokens(["<|new|>"])
    kw = tiny(instruct, reward_models, prompts, tmp_path, method="grpo")
    with pytest.raises(ValueError, match="reward model's tokenizer .* differs from the policy's"):
        T.train_trl_policy(**{**kw, "reward_tokenizer": other})
    with pytest.raises(ValueError, match="method must be one of"):
        T.train_trl_policy(**{**kw, "method": "ppo"})
    with pytest.raises(ValueError, match=r"batch_size \(6\) must be a multiple of num_generations \(4\)"):
        T.train_trl_policy(**{**kw, "batch_size": 6, "num_generations": 4})
    with pytest.raises(ValueError, match="beta must be a positive number"):
        T.train_trl_policy(**{**kw, "beta": 0.0})
    with pytest.raises(ValueError, match="no prompts"):
        T.train_trl_policy(**{**kw, "prompts": []})
