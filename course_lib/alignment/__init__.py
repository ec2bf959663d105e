"""Chapter 07, learning from human feedback: preference data, Bradley-Terry, reward-model and DPO losses, PPO pieces.

Modules: ``preferences`` (prompts and responses of known quality from the world, the
written rules as a gold reward, rankings and pairwise comparisons with label noise),
``bradley_terry`` (preference probabilities and item scores fitted from pairs),
``reward_model`` (a decoder with a scalar head, read at the last token), ``losses`` (the
reward model's pairwise loss, the DPO loss, and PPO's pieces: KL estimators, GAE, the
clipped policy and value losses, entropy), ``reward_experiments`` (reward models trained
with the course loop; the ``reward-models`` artifact), ``dpo`` (DPO with the course loop,
judging a policy by the rules, KL to the reference), ``ppo`` (PPO from scratch, the beta
sweep), ``arena`` (battles, online Elo, Bradley-Terry with bootstrap intervals),
``aligned`` (the ``aligned``, ``ppo-sweep`` and ``arena`` artifacts), ``overoptimisation`` (best-of-n against
the reward model), ``trl_policy`` (TRL's GRPO and RLOO on PPO's setting; the ``rl-comparison`` artifact) and
``external`` (preference pairs from a JSONL file or the Hub, and TRL's reward and DPO trainers on them: the
``gpu`` path).
"""

from . import aligned, reward_experiments, trl_policy  # noqa: F401  (register the zoo's chapter 07 artifacts)
