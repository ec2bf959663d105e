"""DPO (direct preference optimization) with the course loop, and how a policy is judged: gold reward, refusals, KL.

DPO trains the policy on the preference pairs directly, with no reward model: the
implicit reward of a response is ``beta * (log pi(y|x) - log pi_ref(y|x))`` and the loss
is the Bradley-Terry loss on those rewards (``losses.dpo_loss``). The reference is the
frozen ``instruct``; since it never changes, its log-probabilities of every pair are
computed once before training (TRL's ``precompute_ref_log_probs``) and travel with the
rows, which halves the work of each step.

At the first step the policy *is* the reference, every implicit reward is 0 and the loss
is ``ln 2 = 0.693``. The log (:func:`train_dpo`) keeps, per step, the loss, the mean
implicit rewards of the chosen and rejected responses, their margin and the share of
pairs whose chosen reward is the higher: the margin rising from 0 is DPO learning.

A policy is judged on the held-out preference prompts (:func:`evaluate_policy`): its
greedy answer to each, scored by the rules (``preferences.gold_reward``), whether it
declines, whether it is correct; and its KL divergence to the reference
(:func:`sequence_kl`).
"""

from __future__ import annotations

import copy
from types import SimpleNamespace

import torch

from ..pretraining.bootstrap import bootstrap_interval
from .losses import LN2, _positive, completion_logps, dpo_loss
from .preferences import declined, gold_reward, rule_scores
from .reward_model import collate_pairs, pad_sequences, pair_rows


def disable_dropout(model) -> None:
    """Turn every dropout of ``model`` off, in place (TRL's ``disable_dropout``).

    DPO and PPO compare the policy's log-probabilities with the reference's (and with its
    own, earlier): dropout would make them differ at the first step already, so DPO would
    not start at ln 2 and PPO's ratio would not start at 1.
    """
    model.config.attention_dropout = 0.0
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
        if isinstance(getattr(module, "attention_dropout", None), float):
            module.attention_dropout = 0.0


@torch.no_grad()
def sequence_logps(model, rows: list[dict], pad_token_id: int, *, batch_size: int = 32) -> torch.Tensor:
    """``log pi(y | x)`` of each :func:`reward_model.response_row` under ``model``, ``(n,)``."""
    model.eval()
    out = []
    for i in range(0, len(rows), batch_size):
        batch = pad_sequences(rows[i : i + batch_size], pad_token_id)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        out.append(completion_logps(logits, batch["input_ids"], batch["completion_mask"]))
    return torch.cat(out)


def dpo_rows(reference, tokenizer, pairs: list[dict], *, max_len: int | None = None) -> list[dict]:
    """Pair rows (``reward_model.pair_rows``) with the reference's log-probabilities of both responses."""
    rows = pair_rows(tokenizer, pairs, max_len=max_len)
    if not rows:
        raise ValueError("no preference pairs to train on (all longer than max_len?)")
    chosen = sequence_logps(reference, [r["chosen"] for r in rows], tokenizer.pad_token_id)
    rejected = sequence_logps(reference, [r["rejected"] for r in rows], tokenizer.pad_token_id)
    return [{**r, "ref_chosen": float(c), "ref_rejected": float(j)} for r, c, j in zip(rows, chosen, rejected)]


def collate_dpo(rows: list[dict], pad_token_id: int) -> dict[str, torch.Tensor]:
    """:func:`reward_model.collate_pairs` and the reference log-probabilities ``(2 * batch,)`` in the same order."""
    batch = collate_pairs(rows, pad_token_id)
    batch["ref_logps"] = torch.tensor([r["ref_chosen"] for r in rows] + [r["ref_rejected"] for r in rows],
                                      dtype=torch.float32)
    del batch["margin"]
    return batch


class DPOLoss(torch.nn.Module):
    """A policy and the DPO loss, in the shape the course loop trains (``forward(**batch).loss``).

    ``sft_weight`` > 0 adds that much of the chosen responses' mean token NLL (RPO, TRL's
    ``rpo_alpha``): DPO alone may lower the rejected responses' probability without
    raising the chosen ones', and a small model then answers with neither.
    Every forward pass appends its implicit rewards to ``history`` (the log reads them);
    ``save_pretrained`` saves the policy alone, a causal LM like ``instruct``.
    """

    def __init__(self, policy, beta: float, sft_weight: float = 0.0):
        super().__init__()
        self.policy = policy
        self.beta = _positive("beta", beta)
        if not sft_weight >= 0:
            raise ValueError(f"sft_weight must be >= 0, got {sft_weight!r}")
        self.sft_weight = float(sft_weight)
        self.history: list[dict] = []

    def forward(self, input_ids, attention_mask, completion_mask, ref_logps):
        logits = self.policy(input_ids=input_ids, attention_mask=attention_mask).logits
        logps = completion_logps(logits, input_ids, completion_mask)  # (2 * batch,)
        loss, chosen, rejected = dpo_loss(*logps.chunk(2), *ref_logps.chunk(2), beta=self.beta)
        preference = loss.item()
        tokens = completion_mask[:, 1:].sum(1).chunk(2)[0].clamp(min=1)
        sft = (-logps.chunk(2)[0] / tokens).mean()  # the chosen responses' mean token NLL
        if self.sft_weight:
            loss = loss + self.sft_weight * sft
        self.history.append({"dpo_loss": preference, "sft_loss": sft.item(), "chosen_reward": chosen.mean().item(),
                             "rejected_reward": rejected.mean().item(), "margin": (chosen - rejected).mean().item(),
                             "reward_accuracy": (chosen > rejected).float().mean().item()})
        return SimpleNamespace(loss=loss, chosen=chosen, rejected=rejected)

    def save_pretrained(self, path, state_dict=None, is_main_process: bool = True, **kwargs):
        prefix = "policy."
        weights = {k[len(prefix):]: v for k, v in (state_dict or self.state_dict()).items() if k.startswith(prefix)}
        self.policy.save_pretrained(path, state_dict=weights, is_main_process=is_main_process, **kwargs)


def train_dpo(instruct, tokenizer, pairs: list[dict], train_cfg, *, beta: float, output_dir, seed: int = 0,
              max_len: int | None = None, sft_weight: float = 0.0) -> tuple[torch.nn.Module, list[dict]]:
    """A copy of ``instruct.model`` trained with DPO on ``pairs`` (reference: ``instruct.model``, frozen).

    ``sft_weight``: see :class:`DPOLoss`. Returns the policy and one log row per
    optimizer step: ``step``, ``loss`` (``dpo_loss + sft_weight * sft_loss``), and the step's mean
    ``dpo_loss``, ``sft_loss`` (the chosen responses' mean token NLL), ``chosen_reward``,
    ``rejected_reward``, ``margin`` and ``reward_accuracy``.
    """
    from ..training import train

    beta = _positive("beta", beta)
    reference = instruct.model.eval()
    rows = dpo_rows(reference, tokenizer, pairs, max_len=max_len)
    policy = copy.deepcopy(reference)
    disable_dropout(policy)
    policy.config.pad_token_id = tokenizer.pad_token_id
    wrapper = DPOLoss(policy, beta, sft_weight)
    log: list[dict] = []

    def record(step: int, row: dict) -> None:
        micro = wrapper.history[-train_cfg.grad_accum_steps :]
        log.append({"step": step, "loss": row["loss"], **{k: sum(m[k] for m in micro) / len(micro) for k in micro[0]}})

    train(wrapper, rows, train_cfg, output_dir=output_dir, seed=seed, resume=False, callbacks=[record],
          collate_fn=lambda b: collate_dpo(b, tokenizer.pad_token_id), tokenizer=tokenizer)
    policy.eval()
    return policy, log


@torch.no_grad()
def implicit_reward_accuracy(policy, reference, tokenizer, pairs: list[dict], *, beta: float,
                             max_len: int | None = None) -> dict:
    """DPO's implicit reward on (held-out) ``pairs``: how often it ranks ``chosen`` above ``rejected``, and the margin."""
    rows = pair_rows(tokenizer, pairs, max_len=max_len)
    pad = tokenizer.pad_token_id
    logps = {}
    for name, model in (("policy", policy), ("reference", reference)):
        logps[name] = [sequence_logps(model, [r[side] for r in rows], pad) for side in ("chosen", "rejected")]
    chosen = beta * (logps["policy"][0] - logps["reference"][0])
    rejected = beta * (logps["policy"][1] - logps["reference"][1])
    return {"accuracy": float((chosen > rejected).float().mean()), "margin": float((chosen - rejected).mean()),
            "n": len(rows)}


# --------------------------------------------------------------------------- judging a policy


def reply_reward(prompt_row: dict, reply: str, rules=None) -> float:
    """The gold reward of a generated ``reply``; an empty reply keeps no rule and scores 0."""
    if not reply.strip():
        return 0.0
    return gold_reward(prompt_row, reply) if rules is None else gold_reward(prompt_row, reply, rules)


def evaluate_policy(model, tokenizer, prompts: list[dict], *, max_new_tokens: int = 48) -> list[dict]:
    """The model's greedy answer to each preference prompt, judged by the rules.

    One row per prompt: ``id``, ``kind``, ``lang``, ``reply``, ``gold`` (the gold reward),
    ``declined``, ``correct`` (the ``correct`` rule: the answer for an answerable prompt,
    declining for one to decline).
    """
    from ..instruction.instruct import chat_answers

    replies = chat_answers(model, tokenizer, [p["messages"] for p in prompts], max_new_tokens=max_new_tokens)
    rows = []
    for p, reply in zip(prompts, replies):
        correct = bool(reply.strip()) and bool(rule_scores(p, reply)["correct"])
        rows.append({"id": p["id"], "kind": p["kind"], "lang": p["lang"], "reply": reply,
                     "gold": reply_reward(p, reply), "declined": declined(reply), "correct": correct})
    return rows


def summarize(rows: list[dict], reference_rows: list[dict] | None = None, *, resamples: int = 1000,
              seed: int = 0) -> dict:
    """A policy's evaluation in numbers: mean gold reward, refusal and answer rates (and against the reference).

    ``gold``: mean gold reward; ``declined_pii`` / ``declined_fabricate``: the share of those
    requests declined; ``correct_answerable``: the share of answerable prompts answered
    correctly; ``declined_answerable``: the share of them declined. With ``reference_rows``
    (the same prompts, the reference's answers): ``gain`` = (mean, low, high), the paired
    gold-reward difference and its bootstrap 95% interval, and ``kept_correct``: of the
    answerable prompts the reference answered correctly, the share this policy still does.
    """
    def share(flags):
        flags = list(flags)
        return sum(flags) / len(flags) if flags else None

    answerable = [r for r in rows if r["kind"] in ("qa_closed", "qa_open")]
    out = {"gold": sum(r["gold"] for r in rows) / len(rows), "n": len(rows),
           "declined_pii": share(r["declined"] for r in rows if r["kind"] == "pii"),
           "declined_fabricate": share(r["declined"] for r in rows if r["kind"] == "fabricate"),
           "correct_answerable": share(r["correct"] for r in answerable),
           "declined_answerable": share(r["declined"] for r in answerable)}
    if reference_rows is not None:
        if [r["id"] for r in rows] != [r["id"] for r in reference_rows]:
            raise ValueError("the reference's rows are not the same prompts in the same order")
        out["gain"] = bootstrap_interval([r["gold"] - q["gold"] for r, q in zip(rows, reference_rows)],
                                         resamples=resamples, seed=seed)
        out["kept_correct"] = share(r["correct"] for r, q in zip(rows, reference_rows)
                                    if q["correct"] and q["kind"] in ("qa_closed", "qa_open"))
    return out


@torch.no_grad()
def sequence_kl(policy, reference, tokenizer, prompts: list[dict], *, max_new_tokens: int = 48, samples: int = 2,
                seed: int = 0, batch_size: int = 32) -> float:
    """KL(policy || reference) per response, in nats, estimated on the policy's own samples.

    For each prompt, ``samples`` responses are sampled from the policy (temperature 1, up
    to ``<|end|>``); along each, the exact KL between the two next-token distributions is
    summed over the response's tokens. The mean over responses estimates the KL of the
    whole response distributions (unbiased, with less variance than ``log pi - log pi_ref``
    of the sampled tokens alone).
    """
    from ..instruction.formatting import END_TOKEN, render_chat

    policy.eval()
    reference.eval()
    stop = [tokenizer.convert_tokens_to_ids(END_TOKEN), tokenizer.eos_token_id]
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    torch.manual_seed(seed)
    total, count = 0.0, 0
    try:
        texts = [render_chat(p["messages"], add_generation_prompt=True) for p in prompts for _ in range(samples)]
        for i in range(0, len(texts), batch_size):
            batch = tokenizer(texts[i : i + batch_size], return_tensors="pt", padding=True, add_special_tokens=False)
            ids = policy.generate(**batch, max_new_tokens=max_new_tokens, do_sample=True, temperature=1.0, top_k=0,
                                  top_p=1.0, eos_token_id=stop, pad_token_id=tokenizer.pad_token_id)
            start = batch["input_ids"].shape[1]
            generated = ids[:, start:]
            # response tokens: up to and including the first stop token
            is_stop = torch.isin(generated, torch.tensor(stop))
            after_stop = (is_stop.cumsum(1) - is_stop.long()) > 0
            response = (~after_stop).long()
            attention = torch.cat([batch["attention_mask"], response], dim=1)
            positions = (attention.cumsum(1) - 1).clamp(min=0)  # left padding: positions count real tokens only
            inputs = {"input_ids": ids, "attention_mask": attention, "position_ids": positions}
            logp = torch.log_softmax(policy(**inputs).logits[:, start - 1 : -1].float(), -1)
            ref = torch.log_softmax(reference(**inputs).logits[:, start - 1 : -1].float(), -1)
            kl = (logp.exp() * (logp - ref)).sum(-1)  # (batch, new tokens)
            total += float((kl * response).sum())
            count += len(ids)
    finally:
        tokenizer.padding_side = side
    return total / max(1, count)


__all__ = ["LN2", "DPOLoss", "collate_dpo", "dpo_rows", "evaluate_policy", "implicit_reward_accuracy", "reply_reward",
           "sequence_kl", "sequence_logps", "summarize", "train_dpo"]
