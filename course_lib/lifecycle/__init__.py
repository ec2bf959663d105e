"""Chapter 11, the capstone: the whole lifecycle by config, one command, one scorecard.

    >>> from course_lib import lifecycle
    >>> print(lifecycle.format_plan(lifecycle.plan(cfg)))     # stages, cached or not, config sections, estimate
    >>> lifecycle.run(cfg)                                    # builds what is missing, one process per artifact
    >>> card = zoo.get("scorecard", cfg)                      # the figures (also scorecard.html in its folder)

``course lifecycle --profile ci`` (``make capstone`` on ``laptop``) runs it from the command line.

Modules: ``stages`` (the stages in order, the plan, the resumable run), ``models`` (the six models
of the scorecard: base, instruct, aligned, and aligned in int8, pruned and distilled; the
compressed ones are zoo artifacts here), ``scores`` (each model measured: harness, perplexity,
gold reward and KL, footprint, RAG and QASA), ``scorecard`` (the table, the arena, the stages'
costs, the HTML page and its plots), ``scale`` (what the training stages cost at the gpu and
multi_gpu profiles' sizes, derived from their configs).
"""

from . import scorecard, scores  # noqa: F401  (register the zoo's chapter 11 artifacts)
from .models import CHAT_MODELS, MODELS, Loaded, load
from .stages import STAGE_NAMES, STAGES, LifecycleError, Stage, build_command, format_plan, plan, run, select
from .scale import ASSUMED_GPU, ASSUMED_MFU, scale_table
from .scorecard import HTML_FILE, JSON_FILE, model_row, plots, render_html

__all__ = ["CHAT_MODELS", "MODELS", "Loaded", "load", "STAGE_NAMES", "STAGES", "LifecycleError", "Stage",
           "build_command", "format_plan", "plan", "run", "select", "HTML_FILE", "JSON_FILE", "model_row", "plots",
           "render_html", "ASSUMED_GPU", "ASSUMED_MFU", "scale_table"]
