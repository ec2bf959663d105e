"""Chapter 05, evaluation: a harness that scores like lm-evaluation-harness, on the course world's tasks.

    >>> from course_lib.evaluation import evaluate, list_tasks, load_model
    >>> model, tokenizer = load_model("base")                       # a zoo name or a saved folder
    >>> report = evaluate(model, tokenizer, "knowledge,cloze_en", limit=50, num_fewshot=2)
    >>> report["results"]["multiple_choice_en"]["acc_norm"]

Modules, each one idea:

- ``scoring``: log-likelihood of a continuation (lm-eval's tokenization boundary),
  rolling-window log-likelihood of long documents, greedy generation with stop strings;
  causal and seq2seq models.
- ``metrics``: exact match and F1 (SQuAD words, KorQuAD characters), ROUGE-1/2/L,
  chrF/BLEU (sacrebleu), perplexities.
- ``tasks``: the registry of the world's evaluation sets by ability group, prompts,
  k-shot contexts.
- ``harness``: ``evaluate``, ``load_model``, ``format_table``, ``write_json``.
- ``leaderboard``: unigram/bigram baselines (``NgramLM``), ``leaderboard`` and ``summary`` of
  several models on every task with latency, their plots, and ``template_sensitivity``.

``course eval --model base --tasks knowledge`` runs it from the command line.
"""

from .harness import evaluate, format_table, group_scores, load_model, write_json
from .leaderboard import (PHRASINGS, NgramLM, leaderboard, ngram_baseline, ngram_counts, plot_accuracy_vs_latency,
                          plot_leaderboard, plot_template_sensitivity, summary, template_sensitivity, with_template)
from .metrics import (bits_per_byte, bleu, chrf, choice_predictions, exact_match, f1, korquad_f1, normalize_korquad,
                      normalize_squad, number_match, perplexity, rouge, squad_f1)
from .scoring import (encode_pair, generate_until, loglikelihood, loglikelihood_rolling, loglikelihood_tokens,
                      max_length, rolling_windows)
from .tasks import GROUPS, TASKS, Task, get_task, list_tasks, resolve_tasks

__all__ = [
    "evaluate", "format_table", "group_scores", "load_model", "write_json",
    "PHRASINGS", "NgramLM", "leaderboard", "ngram_baseline", "ngram_counts", "plot_accuracy_vs_latency",
    "plot_leaderboard", "plot_template_sensitivity", "summary", "template_sensitivity", "with_template",
    "bits_per_byte", "bleu", "chrf", "choice_predictions", "exact_match", "f1", "korquad_f1", "normalize_korquad",
    "normalize_squad", "number_match", "perplexity", "rouge", "squad_f1",
    "encode_pair", "generate_until", "loglikelihood", "loglikelihood_rolling", "loglikelihood_tokens", "max_length",
    "rolling_windows",
    "GROUPS", "TASKS", "Task", "get_task", "list_tasks", "resolve_tasks",
]
