"""Task clusters (태스크 클러스터) for instruction tuning, FLAN-style: tasks from the world, phrased by templates, mixed.

FLAN (survey §4) gathers 62 datasets into 12 *clusters* of tasks of one type
(inference, closed-book QA, translation, ...), phrases every example with one of
about ten instruction templates, and mixes the tasks in proportion to their size
with a cap, so that no large dataset drowns the others. Evaluating on a cluster held
out of training asks the real question: does the model follow instructions for a
*kind* of task it was never tuned on?

The course does the same on its world. ``CLUSTERS`` holds 12 clusters of 16 tasks:
ten are the world's task families (``world.tasks``), six are built here from the
world's facts:

- ``data_to_text``: an infobox (field: value lines) -> the sentences that say it;
- ``paraphrase``: do two sentences state the same fact? (yes/no);
- ``sort_by_birth_year`` / ``sort_by_population``: order the names that a short
  passage gives years or populations for;
- ``list_extraction``: list the people of a passage who were born in a given city;
- ``fresh_reading``: read a passage about an invented person (``world.fresh_passages``:
  a name in no document) and answer from it, which memory cannot do.

Every example exists in English and Korean. The world's families are rows of one
language each (a translation row is phrased in its source language); the new tasks
are built once and said in both languages, so their rows come in parallel pairs.

Splits keep evaluation honest, as in the world: ``train`` rows use training facts and
training templates; ``test`` rows depend on a held-out fact (training templates);
``test_template`` rows use the held-out templates (``templates.HELD_OUT``) on training
facts. A world row keeps the world's split; a new task's example goes to ``test`` when
one of its facts is a test fact, else to ``test_template`` for a stable share of its
facts. New tasks use the world's statement phrasings except its held-out last one.

:func:`instruction_examples` returns chat rows; :func:`mix` mixes them as FLAN does.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from functools import lru_cache

from .. import checks
from ..config import WorldConfig
from ..world import build_world, fresh_passages
from ..world.entities import Fact, rng_for, stable_fraction
from ..world.task_pages import FIELD_NAMES
from ..world.tasks import false_value, value_text
from ..world.templates import RELATIONS, STATEMENTS
from ..world.world import World
from .formatting import check_messages
from .templates import LANGS, render, templates

CLUSTERS: dict[str, tuple[str, ...]] = {
    "nli": ("entailment",),
    "paraphrase": ("paraphrase",),
    "closed_book_qa": ("qa_closed", "multiple_choice"),
    "reading_comprehension": ("qa_open", "fresh_reading"),
    "cloze": ("cloze",),
    "summarization": ("summarization",),
    "translation": ("translation",),
    "struct_to_text": ("data_to_text",),
    "arithmetic": ("arithmetic",),
    "ranking": ("sort_by_birth_year", "sort_by_population"),
    "list_extraction": ("list_extraction",),
    "premise_check": ("false_premise", "unanswerable"),
}
CLUSTER_OF = {task: cluster for cluster, tasks in CLUSTERS.items() for task in tasks}
SPLITS = ("train", "test", "test_template")
TEMPLATE_SPLIT_SHARE = 0.25  # share of a new task's training-fact examples phrased with held-out templates
SYSTEM = {"en": "You are a helpful assistant. Follow the instruction and answer briefly.",
          "ko": "당신은 지시문을 따라 간결하게 답하는 도우미입니다."}
LANG_NAMES = {"en": {"en": "English", "ko": "Korean"}, "ko": {"en": "영어", "ko": "한국어"}}  # in the instruction's language
YES_NO = {"en": ("yes", "no"), "ko": ("예", "아니요")}
NAME_FIELD = {"en": "name", "ko": "이름"}


@dataclass(frozen=True)
class Source:
    """One task input before it is phrased: the slots a template fills, its split and where it came from.

    ``key`` names the source within its task (a world row id, an entity id, an item number);
    ``fact_ids`` are the world facts the answer depends on (none for invented people).
    """

    key: str
    task: str
    lang: str
    split: str
    fact_ids: tuple[str, ...]
    slots: dict


# ---------------------------------------------------------------------- the world's task families

# world family -> {slot: column of the world's task row}; the answer is always the row's `answer`
_WORLD_SLOTS = {
    "cloze": {"context": "context", "text": "question"},
    "entailment": {"premise": "context", "hypothesis": "question"},
    "multiple_choice": {"question": "question"},
    "qa_closed": {"question": "question"},
    "qa_open": {"context": "context", "question": "question"},
    "summarization": {"article": "context", "request": "question"},
    "translation": {"source": "question"},
    "arithmetic": {"problem": "question"},
    "false_premise": {"question": "question"},
    "unanswerable": {"question": "question"},
}


def world_source(row: dict) -> Source:
    """A world task row as a ``Source``; its language is the row's (the source language for translation)."""
    task, lang = row["task"], row["lang"].split("-")[0]
    slots = {slot: row[column] for slot, column in _WORLD_SLOTS[task].items()}
    slots["answer"] = row["answer"]
    if task == "entailment":
        slots["options"] = ", ".join(row["choices"])
    elif task == "multiple_choice":
        slots["options"] = "\n".join(f"- {choice}" for choice in row["choices"])
    elif task == "translation":
        src, tgt = row["lang"].split("-")
        slots |= {"src": LANG_NAMES[lang][src], "tgt": LANG_NAMES[lang][tgt],  # in the instruction's language
                  "src_label": LANG_NAMES["en"][src], "tgt_label": LANG_NAMES["en"][tgt]}  # the harness's labels
    return Source(row["id"], task, lang, row["split"], tuple(row["fact_ids"]), slots)


# ---------------------------------------------------------------------- tasks built from the world's facts


def fact_split(world: World, facts: list[Fact]) -> str:
    """``test`` if a fact is held out, else ``test_template`` for a stable share of fact sets, else ``train``.

    The share is a hash of the facts, so the same facts always land on the same side.
    """
    if any(f.split == "test" for f in facts):
        return "test"
    key = "|".join(sorted(f.id for f in facts))
    return "test_template" if stable_fraction(str(world.config.seed), "instruction", key) < TEMPLATE_SPLIT_SHARE \
        else "train"


def _phrasing(rng, relation: str) -> int:
    """A statement template of ``relation`` that is not the world's held-out last one (same index in both languages)."""
    return rng.randrange(len(STATEMENTS[relation]["en"]) - 1)


def _draw_pool(world: World, rng, facts: list[Fact]) -> list[Fact]:
    """The facts one example of several facts draws from: training facts only, or all for a ``held_out_fact_fraction``.

    Drawing five facts at random would almost always hit a test fact; this keeps most examples trainable.
    """
    if rng.random() < world.config.held_out_fact_fraction:
        return facts
    return [f for f in facts if f.split == "train"]


def _say(world: World, fact: Fact, lang: str, phrasing: int) -> str:
    return world.graph.fill(STATEMENTS[fact.relation][lang][phrasing], fact, lang)


def _both(key: str, task: str, split: str, facts: list[Fact], slots_of) -> list[Source]:
    """The same example in English and Korean: ``slots_of(lang)`` gives its slots in each."""
    ids = tuple(f.id for f in facts)
    return [Source(key, task, lang, split, ids, slots_of(lang)) for lang in LANGS]


def _field_value(world: World, fact: Fact, lang: str) -> str:
    """A value as an infobox writes it: Korean years and counts take their unit (1953년, 12,300명)."""
    unit = {"year": "년", "count": "명"}.get(RELATIONS[fact.relation][1], "") if lang == "ko" else ""
    return world.graph.value_text(fact, lang) + unit


def data_to_text(world: World) -> list[Source]:
    """One infobox per entity with two or more facts: two or three of them as field lines -> sentences.

    The target says each fact in the world's plainest phrasing (statement template 0).
    """
    g, rng, out = world.graph, rng_for(world.config.seed, "instruction", "data_to_text"), []
    for entity in world.entities():
        facts = g.facts_about(entity.id, as_value=False)
        if len(facts) < 2:
            continue
        facts = sorted(rng.sample(facts, min(len(facts), rng.randint(2, 3))), key=facts.index)
        fields = [rng.randrange(len(FIELD_NAMES[f.relation]["en"])) for f in facts]

        def slots(lang, entity=entity, facts=facts, fields=fields):
            name = g.name(entity.id, lang)
            lines = [f"{NAME_FIELD[lang]}: {name}"] + [f"{FIELD_NAMES[f.relation][lang][k]}: {_field_value(world, f, lang)}"
                                                       for f, k in zip(facts, fields)]
            return {"name": name, "table": "\n".join(lines), "answer": " ".join(_say(world, f, lang, 0) for f in facts)}

        out += _both(entity.id, "data_to_text", fact_split(world, facts), facts, slots)
    return out


def paraphrase(world: World) -> list[Source]:
    """Sentence pairs: the same fact in two phrasings (yes), or a false value or another fact of the subject (no).

    About half the pairs are paraphrases. ``world.config.tasks_per_family`` draws, repeats skipped.
    """
    g, rng, out, seen = world.graph, rng_for(world.config.seed, "instruction", "paraphrase"), [], set()
    facts = list(g.facts.values())
    for _ in range(world.config.tasks_per_family):
        fact = rng.choice(facts)
        i, j = rng.sample(range(len(STATEMENTS[fact.relation]["en"]) - 1), 2)
        others = [f for f in g.facts_about(fact.subject, as_value=False) if f.relation != fact.relation]
        kind = "same" if rng.random() < 0.5 else "other" if others and rng.random() < 0.5 else "false"
        second = rng.choice(others) if kind == "other" else fact
        wrong = false_value(g, fact, rng) if kind == "false" else None
        key = f"{fact.id}/{i}/{second.id}/{j}/{kind}"
        if key in seen:
            continue
        seen.add(key)
        used = [fact] if second is fact else [fact, second]

        def slots(lang, fact=fact, second=second, i=i, j=j, wrong=wrong, kind=kind):
            o = None if wrong is None else value_text(g, fact, wrong, lang)
            sentence2 = g.fill(STATEMENTS[second.relation][lang][j], second, lang, o)
            yes, no = YES_NO[lang]
            return {"sentence1": _say(world, fact, lang, i), "sentence2": sentence2, "options": f"{yes}, {no}",
                    "answer": yes if kind == "same" else no}

        out += _both(f"{len(seen) - 1:05d}", "paraphrase", fact_split(world, used), used, slots)
    return out


# ranking task -> (relation, largest first?, the order in words per language)
RANKINGS = {
    "sort_by_birth_year": ("birth_year", False, {"en": "from the earliest birth year to the latest",
                                                 "ko": "출생 연도가 이른 순서대로"}),
    "sort_by_population": ("population", True, {"en": "from the largest population to the smallest",
                                                "ko": "인구가 많은 순서대로"}),
}


def ranking(world: World, task: str) -> list[Source]:
    """Three to five entities, a sentence each giving the value; the answer lists their names in order.

    Sets with a tie are skipped (two orders would be right), and so are repeated sets.
    """
    relation, descending, criterion = RANKINGS[task]
    g, rng, out, seen = world.graph, rng_for(world.config.seed, "instruction", task), [], set()
    for _ in range(world.config.tasks_per_family):
        facts = _draw_pool(world, rng, world.facts(relation=relation))
        if len(facts) < 3:
            continue
        picked = rng.sample(facts, rng.randint(3, min(5, len(facts))))
        key = "|".join(sorted(f.id for f in picked))
        if len({f.value for f in picked}) < len(picked) or key in seen:
            continue
        seen.add(key)
        phrasings = [_phrasing(rng, relation) for _ in picked]
        listed = rng.sample(picked, len(picked))  # the names as the instruction lists them: not the answer's order
        ordered = sorted(picked, key=lambda f: f.value, reverse=descending)

        def slots(lang, picked=picked, phrasings=phrasings, listed=listed, ordered=ordered):
            names = lambda fs: ", ".join(g.name(f.subject, lang) for f in fs)
            return {"passage": " ".join(_say(world, f, lang, p) for f, p in zip(picked, phrasings)),
                    "items": names(listed), "criterion": criterion[lang], "answer": names(ordered)}

        out += _both(f"{len(seen) - 1:05d}", task, fact_split(world, picked), picked, slots)
    return out


def list_extraction(world: World) -> list[Source]:
    """A passage of birthplaces (four to six people): list those born in one city, in passage order."""
    g, rng, out, seen = world.graph, rng_for(world.config.seed, "instruction", "list_extraction"), [], set()
    cities = sorted({f.value for f in world.facts(relation="birth_place")})
    for _ in range(world.config.tasks_per_family):
        facts = _draw_pool(world, rng, world.facts(relation="birth_place"))
        city = rng.choice(cities)
        inside = [f for f in facts if f.value == city]
        outside = [f for f in facts if f.value != city]
        if not inside or len(outside) < 3:
            continue
        picked = rng.sample(inside, rng.randint(1, min(2, len(inside)))) + rng.sample(outside, rng.randint(3, 4))
        rng.shuffle(picked)
        key = "|".join(sorted(f.id for f in picked))
        if key in seen:
            continue
        seen.add(key)
        phrasings = [_phrasing(rng, "birth_place") for _ in picked]

        def slots(lang, picked=picked, phrasings=phrasings, city=city):
            return {"passage": " ".join(_say(world, f, lang, p) for f, p in zip(picked, phrasings)),
                    "place": g.name(city, lang),
                    "answer": ", ".join(g.name(f.subject, lang) for f in picked if f.value == city)}

        out += _both(f"{len(seen) - 1:05d}", "list_extraction", fact_split(world, picked), picked, slots)
    return out


def fresh_reading(world: World) -> list[Source]:
    """Reading comprehension on passages about invented people (``world.fresh_passages``), one per person.

    Their facts are no world facts, so the split hashes the person: ``held_out_fact_fraction``
    of them are ``test``, a ``TEMPLATE_SPLIT_SHARE`` of the rest ``test_template``.
    """
    seed = str(world.config.seed)
    out = []
    for row in fresh_passages(world, world.config.tasks_per_family, seed=world.config.seed):
        person = row["id"].split("/")[1]
        if stable_fraction(seed, "fresh-split", person) < world.config.held_out_fact_fraction:
            split = "test"
        else:
            split = "test_template" if stable_fraction(seed, "instruction", person) < TEMPLATE_SPLIT_SHARE else "train"
        slots = {"context": row["context"], "question": row["question"], "answer": row["answer"]}
        out.append(Source(f"fresh-{person}", "fresh_reading", row["lang"], split, (), slots))
    return out


_BUILT = {"data_to_text": data_to_text, "paraphrase": paraphrase, "list_extraction": list_extraction,
          "fresh_reading": fresh_reading, **{task: lambda w, task=task: ranking(w, task) for task in RANKINGS}}


# ---------------------------------------------------------------------- rows


def world_config(cfg) -> WorldConfig:
    """The ``WorldConfig`` of a full ``Config``, a ``WorldConfig`` itself, or (None) the current profile's."""
    if cfg is None:
        from ..config import load_config

        cfg = load_config()
    if isinstance(cfg, WorldConfig):
        return cfg
    if isinstance(getattr(cfg, "world", None), WorldConfig):
        return cfg.world
    raise TypeError(f"cfg: expected a Config or a WorldConfig, got {checks.type_name(cfg)}")


def task_sources(cfg, task: str) -> tuple[Source, ...]:
    """Every source of ``task`` in the world of ``cfg``, all splits and languages, in a fixed order."""
    if task not in CLUSTER_OF:
        raise ValueError(f"task: unknown task {task!r}; tasks: {', '.join(CLUSTER_OF)}")
    return _sources(json.dumps(dataclasses.asdict(world_config(cfg)), sort_keys=True), task)


@lru_cache(maxsize=64)
def _sources(world_key: str, task: str) -> tuple[Source, ...]:
    world = build_world(WorldConfig(**json.loads(world_key)))
    if task in _BUILT:
        return tuple(_BUILT[task](world))
    return tuple(world_source(row) for row in world.tasks if row["task"] == task)


def instruction_row(source: Source, seed: int = 0, training_templates: int | None = None) -> dict:
    """``source`` phrased by one template as a chat row (system, user, assistant), checked by ``check_messages``.

    The template is drawn with ``seed`` from the training templates (only the first
    ``training_templates`` of them, if given), or for a ``test_template`` source from the held-out ones. ``answer`` is what the response
    states: the task's answer, or the target of a turned-around template.
    """
    held_out = source.split == "test_template"
    allowed = [t for t in templates(source.task, source.lang) if t.held_out == held_out]
    if training_templates is not None and not held_out:
        allowed = allowed[:training_templates]
    template = allowed[rng_for(seed, "template", source.task, source.lang, source.key).randrange(len(allowed))]
    row_id = f"{source.task}/{source.lang}/{source.key}"
    user, assistant = render(template, source.slots, row_id)
    messages = [{"role": "system", "content": SYSTEM[source.lang]}, {"role": "user", "content": user},
                {"role": "assistant", "content": assistant}]
    check_messages(messages, row_id)
    return {"id": row_id, "cluster": CLUSTER_OF[source.task], "task": source.task, "split": source.split,
            "template_id": template.id, "lang": source.lang, "messages": messages,
            "answer": source.slots[template.target], "source_id": source.key, "fact_ids": list(source.fact_ids)}


def instruction_examples(cfg=None, *, clusters=None, split: str = "train", langs=LANGS, per_task_cap: int | None = None,
                         seed: int = 0, training_templates: int | None = None) -> list[dict]:
    """Instruction-tuning rows of ``clusters`` (default: all) for one ``split``, in ``langs``.

    Each row: ``id``, ``cluster``, ``task``, ``split``, ``template_id``, ``lang``,
    ``messages`` (system, user, assistant), ``answer`` (what the assistant says),
    ``source_id`` and ``fact_ids`` (where it came from). ``per_task_cap`` keeps at most
    that many rows per task and language, drawn with ``seed`` (source order kept).
    ``training_templates`` phrases training rows with only the first n training templates
    of each task (chapter 06's template-diversity experiment).
    Deterministic in (world, arguments). ``cfg``: a ``Config``, a ``WorldConfig`` or
    None (the current profile's).
    """
    clusters = tuple(CLUSTERS) if clusters is None else tuple(dict.fromkeys(checks.names("clusters", clusters,
                                                                                       tuple(CLUSTERS))))
    langs = checks.names("langs", langs, LANGS)
    if split not in SPLITS:
        raise ValueError(f"split: unknown split {split!r}; splits: {', '.join(SPLITS)}")
    for name, value in (("per_task_cap", per_task_cap), ("training_templates", training_templates)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"{name}: expected None or an int >= 1, got {value!r}")
    rows = []
    for task in (t for c in clusters for t in CLUSTERS[c]):
        sources = task_sources(cfg, task)
        for lang in langs:
            pool = [s for s in sources if s.split == split and s.lang == lang]
            if per_task_cap is not None and len(pool) > per_task_cap:
                keep = set(rng_for(seed, "cap", task, lang, split).sample(range(len(pool)), per_task_cap))
                pool = [s for i, s in enumerate(pool) if i in keep]
            rows += [instruction_row(s, seed, training_templates) for s in pool]
    return rows


# ---------------------------------------------------------------------- mixtures


def _check_weights(weights) -> dict[str, float]:
    """Each cluster's weight (1.0 unless ``weights`` names it); an unknown cluster or a bad weight names it."""
    if weights is not None and not hasattr(weights, "items"):
        raise TypeError(f"weights: expected a dict {{cluster: weight}}, got {checks.type_name(weights)}")
    out = dict.fromkeys(CLUSTERS, 1.0)
    for cluster, w in (weights or {}).items():
        if cluster not in CLUSTERS:
            raise ValueError(f"weights: unknown cluster {cluster!r}; clusters: {', '.join(CLUSTERS)}")
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
            raise ValueError(f"weights[{cluster!r}] = {w!r}: a weight must be a finite number >= 0")
        out[cluster] = float(w)
    return out


def quotas(sizes: dict[str, int], rates: dict[str, float], total: int) -> dict[str, int]:
    """Split ``total`` rows over tasks in proportion to ``rates``, rounding by largest remainder (sums to ``total``).

    >>> quotas({"a": 5, "b": 3, "c": 5}, {"a": 10.0, "b": 3.0, "c": 5.0}, 20)
    {'a': 11, 'b': 3, 'c': 6}
    """
    norm = sum(rates.values())
    exact = {t: total * rates[t] / norm for t in sizes}
    out = {t: math.floor(x) for t, x in exact.items()}
    by_remainder = sorted(sizes, key=lambda t: (-(exact[t] - out[t]), list(sizes).index(t)))
    for t in by_remainder[: total - sum(out.values())]:
        out[t] += 1
    return out


def mix(examples, weights: dict | None = None, cap: int | None = None, total: int | None = None,
        seed: int = 0) -> list[dict]:
    """A FLAN-style mixture: examples-proportional with a per-task ``cap``, scaled by per-cluster ``weights``.

    Each task keeps at most ``cap`` of its rows (drawn with ``seed``); its share of the
    mixture is ``weight[cluster] * kept rows`` over the sum of all tasks. A weight of 0
    leaves a cluster out (the FLAN held-out-cluster setting); clusters not named weigh 1.
    ``total`` rows are drawn (default: every kept row of a weighted cluster once): a task
    whose share is more than it kept repeats its kept rows (more epochs of the same
    rows), so it never shows more than ``cap`` distinct rows. The result is shuffled.
    """
    examples = checks.sequence("examples", examples, "rows")
    weight = _check_weights(weights)
    for name, value, low in (("cap", cap, 1), ("total", total, 0)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
            raise ValueError(f"{name}: expected None or an int >= {low}, got {value!r}")
    by_task: dict[str, list[dict]] = {}
    for i, row in enumerate(examples):
        if not isinstance(row, dict):
            raise TypeError(f"examples[{i}]: expected a row dict, got {checks.type_name(row)}")
        if row.get("cluster") not in CLUSTERS:
            raise ValueError(f"examples[{i}] (row {row.get('id')!r}): unknown cluster {row.get('cluster')!r}; "
                             f"clusters: {', '.join(CLUSTERS)}")
        by_task.setdefault(row["task"], []).append(row)
    rng = rng_for(seed, "mix")
    kept = {t: rng.sample(rows, min(len(rows), cap or len(rows))) for t, rows in by_task.items()}
    rates = {t: weight[rows[0]["cluster"]] * len(rows) for t, rows in kept.items()}
    kept = {t: rows for t, rows in kept.items() if rates[t] > 0}
    if not kept:
        raise ValueError("mix: every cluster of the examples has weight 0; nothing to mix")
    total = sum(len(rows) for rows in kept.values()) if total is None else total
    share = quotas({t: len(rows) for t, rows in kept.items()}, {t: rates[t] for t in kept}, total)
    out = [kept[t][i % len(kept[t])] for t in kept for i in range(share[t])]
    rng.shuffle(out)
    return out
