"""Chapter 06's task clusters and instruction templates: counts, held-out phrasings, splits, Korean rows, mixtures."""

import collections
import re
import string

import pytest

from course_lib.instruction import clusters as C
from course_lib.instruction.clusters import CLUSTERS, instruction_examples, instruction_row, mix, quotas, task_sources
from course_lib.instruction.formatting import check_messages
from course_lib.instruction.templates import HELD_OUT, LANGS, TEMPLATE_SET, Template, render, template, templates
from course_lib.world import build_world
from course_lib.world.hangul import detect_lang, is_hangul_syllable
from course_lib.world.templates import STATEMENTS

TASKS = [task for tasks in CLUSTERS.values() for task in tasks]


@pytest.fixture(scope="module")
def world(ci):
    return build_world(ci.world)


@pytest.fixture(scope="module")
def rows(ci):
    return {split: instruction_examples(ci, split=split) for split in C.SPLITS}


def pattern(text: str) -> re.Pattern:
    """A template string as a regex: its literal text exactly, each slot (with any Korean particle) as ``.+?``."""
    parts = []
    for literal, name, _, _ in string.Formatter().parse(text):
        parts.append(re.escape(literal))
        if name is not None:
            parts.append("(.+?)")
    return re.compile("".join(parts), re.DOTALL)


def literal(text: str) -> str:
    """A template's own words: the text with its slots taken out."""
    return "".join(lit for lit, _, _, _ in string.Formatter().parse(text))


def test_at_least_ten_clusters_each_with_rows_in_both_languages(rows):
    assert len(CLUSTERS) >= 10
    assert len(TASKS) == len(set(TASKS)) and set(TASKS) == set(TEMPLATE_SET)
    counts = collections.Counter((r["cluster"], r["task"], r["lang"]) for r in rows["train"])
    missing = [(c, t, lang) for c, tasks in CLUSTERS.items() for t in tasks for lang in LANGS if counts[c, t, lang] < 3]
    assert not missing, f"clusters/tasks with fewer than 3 training rows: {missing}"
    for split in ("test", "test_template"):
        assert {r["cluster"] for r in rows[split]} == set(CLUSTERS), split


def test_ten_templates_per_task_and_language_the_last_two_held_out():
    for task in TASKS:
        for lang in LANGS:
            ts = templates(task, lang)
            assert len(ts) >= 10, (task, lang)
            assert [t.held_out for t in ts] == [False] * (len(ts) - HELD_OUT) + [True] * HELD_OUT
            assert len({t.instruction for t in ts}) == len(ts), f"{task}/{lang}: two templates say the same"
            assert all(not (t.held_out and t.turned_around) for t in ts)
            assert [t.id for t in ts] == [f"{task}/{lang}/{i}" for i in range(len(ts))]
    turned = {t.task for task in TASKS for lang in LANGS for t in templates(task, lang) if t.turned_around}
    assert {"qa_closed", "qa_open", "data_to_text"} <= turned
    assert template("qa_open/ko/8") is templates("qa_open", "ko")[8]
    with pytest.raises(ValueError, match="qa_open/xx/8"):
        template("qa_open/xx/8")


def test_every_template_fills_from_an_example_of_its_task(ci):
    """No template has a slot its task's examples lack, so no example is ever skipped."""
    for task in TASKS:
        sources = task_sources(ci, task)
        for lang in LANGS:
            source = next(s for s in sources if s.lang == lang)
            for t in templates(task, lang):
                user, assistant = render(t, source.slots, source.key)
                assert "{" not in user.replace(source.slots.get("context", ""), ""), t.id
                assert assistant.strip() and source.slots[t.target] in assistant, t.id


def test_templates_speak_their_language():
    for task in TASKS:
        for lang in LANGS:
            for t in templates(task, lang):
                words = literal(t.instruction)
                if sum(ch.isalpha() for ch in words) >= 4:  # a bare "{question}" has no words of its own
                    assert detect_lang(words) == lang, (t.id, words)


def test_held_out_templates_never_phrase_a_training_row(rows):
    """By id, and by text: no training row's user turn reads as a held-out template filled in."""
    for split in ("train", "test"):
        assert not [r["id"] for r in rows[split] if template(r["template_id"]).held_out], split
    assert all(template(r["template_id"]).held_out for r in rows["test_template"])
    held = {(task, lang): [pattern(t.instruction) for t in templates(task, lang) if t.held_out]
            for task in TASKS for lang in LANGS}
    leaks = [(r["id"], r["template_id"]) for r in rows["train"]
             if any(p.fullmatch(r["messages"][1]["content"]) for p in held[r["task"], r["lang"]])]
    assert not leaks, f"training rows phrased like a held-out template: {leaks[:5]}"
    # the check can fail: every test_template row does read as its own held-out template
    for r in rows["test_template"]:
        assert pattern(template(r["template_id"]).instruction).fullmatch(r["messages"][1]["content"]), r["id"]
    used = {r["template_id"] for r in rows["test_template"]}
    assert len(used) >= len(TASKS) * len(LANGS), "test_template rows should use many held-out templates"


def test_rows_are_chats_whose_assistant_states_the_answer(rows):
    for split, split_rows in rows.items():
        assert len({r["id"] for r in split_rows}) == len(split_rows), split
        for r in split_rows:
            assert r["split"] == split and r["cluster"] == C.CLUSTER_OF[r["task"]]
            messages = check_messages(r["messages"], r["id"])
            assert [m["role"] for m in messages] == ["system", "user", "assistant"]
            t = template(r["template_id"])
            assert t.task == r["task"] and t.lang == r["lang"]
            content = messages[2]["content"]
            assert r["answer"].strip() and r["answer"] in content, r["id"]
            if t.response == "{" + t.target + "}":
                assert content == r["answer"], r["id"]


def test_korean_rows_are_korean_and_english_rows_english(rows):
    """A row's instruction is in its language, and so is its answer, unless it is a number or a translation."""
    for r in rows["train"] + rows["test_template"]:
        user, answer = r["messages"][1]["content"], r["answer"]
        assert detect_lang(user) == r["lang"] and r["messages"][0]["content"] == C.SYSTEM[r["lang"]], r["id"]
        if not any(ch.isalpha() for ch in answer):
            continue  # a year, a count
        hangul = any(is_hangul_syllable(ch) for ch in answer)
        target = {"en": "ko", "ko": "en"}[r["lang"]] if r["task"] == "translation" else r["lang"]
        if template(r["template_id"]).turned_around:
            target = r["lang"]
        assert hangul == (target == "ko"), (r["id"], answer)


def test_rows_are_deterministic_and_the_seed_picks_the_templates(ci):
    first = instruction_examples(ci, split="train", seed=3)
    C._sources.cache_clear()
    again = instruction_examples(ci, split="train", seed=3)
    assert first == again
    other = instruction_examples(ci, split="train", seed=4)
    assert [r["id"] for r in other] == [r["id"] for r in first]  # the same examples ...
    changed = sum(a["template_id"] != b["template_id"] for a, b in zip(first, other))
    assert changed > len(first) // 2  # ... phrased by other templates


def test_splits_keep_held_out_facts_out_of_training(rows, world):
    split_of = {f.id: f.split for f in world.graph.facts.values()}
    for r in rows["train"] + rows["test_template"]:
        assert all(split_of[f] == "train" for f in r["fact_ids"]), r["id"]
    for r in rows["test"]:
        if r["fact_ids"]:
            assert any(split_of[f] == "test" for f in r["fact_ids"]), r["id"]
    sources = {split: {(r["task"], r["source_id"]) for r in split_rows} for split, split_rows in rows.items()}
    assert not sources["train"] & sources["test"] and not sources["train"] & sources["test_template"]
    assert not sources["test"] & sources["test_template"]


def test_new_tasks_have_the_right_answers(rows, world):
    """Hand-checkable answers: orders by the world's values, lists by birthplace, infoboxes by statements."""
    by_name = {e.name.en: e.id for e in world.entities()} | {e.name.ko: e.id for e in world.entities()}
    checked = collections.Counter()
    for r in rows["train"] + rows["test"]:
        if r["task"] in C.RANKINGS and template(r["template_id"]).target == "answer":
            relation, descending, _ = C.RANKINGS[r["task"]]
            values = [world.graph.value(by_name[n], relation) for n in r["answer"].split(", ")]
            assert values == sorted(values, reverse=descending) and len(values) >= 3, r["id"]
        elif r["task"] == "list_extraction":
            facts = [world.fact(f) for f in r["fact_ids"]]
            place = next(f.value for f in facts if world.graph.name(f.value, r["lang"]) in r["messages"][1]["content"]
                         and world.graph.name(f.subject, r["lang"]) in r["answer"].split(", "))
            expected = [world.graph.name(f.subject, r["lang"]) for f in facts if f.value == place]
            assert sorted(r["answer"].split(", ")) == sorted(expected), r["id"]
        elif r["task"] == "data_to_text" and template(r["template_id"]).target == "answer":
            statements = [world.statement(f, r["lang"], 0) for f in r["fact_ids"]]
            assert r["answer"] == " ".join(statements), r["id"]
        elif r["task"] == "paraphrase":
            assert (r["answer"] in ("yes", "예")) == _same_fact_twice(world, r), r["id"]
        checked[r["task"]] += 1
    assert all(checked[t] >= 5 for t in ("sort_by_birth_year", "sort_by_population", "list_extraction",
                                          "data_to_text", "paraphrase")), checked


def _same_fact_twice(world, row) -> bool:
    """Whether a paraphrase row's two sentences are two phrasings of one true fact."""
    if len(row["fact_ids"]) != 1:
        return False
    fact = world.fact(row["fact_ids"][0])
    said = [world.statement(fact, row["lang"], i) for i in range(len(STATEMENTS[fact.relation][row["lang"]]))]
    return sum(s in row["messages"][1]["content"] for s in said) == 2


def test_fresh_reading_answers_come_from_the_passage(rows):
    fresh = [r for r in rows["train"] if r["task"] == "fresh_reading" and template(r["template_id"]).target == "answer"]
    assert len(fresh) >= 10
    assert all(r["answer"] in r["messages"][1]["content"] and not r["fact_ids"] for r in fresh)


def test_per_task_cap_keeps_a_subset(ci, rows):
    capped = instruction_examples(ci, split="train", per_task_cap=5, clusters=["ranking", "nli"], langs=("ko",))
    counts = collections.Counter(r["task"] for r in capped)
    assert counts == {"sort_by_birth_year": 5, "sort_by_population": 5, "entailment": 5}
    full = {r["id"]: r for r in rows["train"]}
    assert all(full[r["id"]] == r for r in capped)  # the same rows, phrased the same way, whatever the cap


def test_a_missing_slot_names_the_template_and_the_slot(ci):
    bad = Template("qa_closed/en/99", "Answer about {topic}: {question}", "{answer}")
    with pytest.raises(ValueError, match=r"qa_closed/en/99.*\{topic\}.*row-7"):
        render(bad, {"question": "Why?", "answer": "Because."}, "row-7")
    with pytest.raises(ValueError, match=r"ko/99.*\{name\}"):
        render(Template("data_to_text/ko/99", "{name:을} 설명하세요.", "{answer}"), {"answer": "가"})
    source = next(s for s in task_sources(ci, "qa_open") if s.split == "train")
    broken = C.Source(source.key, source.task, source.lang, source.split, source.fact_ids,
                      {k: v for k, v in source.slots.items() if k != "context"})
    with pytest.raises(ValueError, match=r"qa_open/(en|ko)/\d.*\{context\}"):
        instruction_row(broken)


def test_bad_arguments_are_named(ci):
    with pytest.raises(ValueError, match="'poetry'"):
        instruction_examples(ci, clusters=["nli", "poetry"])
    with pytest.raises(TypeError, match="clusters"):
        instruction_examples(ci, clusters="nli")
    with pytest.raises(ValueError, match="'dev'"):
        instruction_examples(ci, split="dev")
    with pytest.raises(ValueError, match="'fr'"):
        instruction_examples(ci, langs=("en", "fr"))
    with pytest.raises(ValueError, match="per_task_cap"):
        instruction_examples(ci, per_task_cap=0)
    with pytest.raises(ValueError, match="'riddles'"):
        task_sources(ci, "riddles")


def fake_rows(spec: dict[str, tuple[str, int]]) -> list[dict]:
    """``n`` rows of each task ``{task: (cluster, n)}``, ids ``task-i``."""
    return [{"id": f"{task}-{i}", "task": task, "cluster": cluster} for task, (cluster, n) in spec.items()
            for i in range(n)]


def test_mix_is_examples_proportional_with_a_cap_and_cluster_weights():
    rows = fake_rows({"a": ("nli", 10), "b": ("cloze", 3), "c": ("arithmetic", 8), "d": ("translation", 6)})
    # capped sizes a 5, b 3, c 5, d 5; rates a 2*5=10, b 1*3=3, c 1*5=5, d 0: shares of 20 are 11.1, 3.3, 5.6
    mixed = mix(rows, weights={"nli": 2, "translation": 0}, cap=5, total=20, seed=1)
    assert collections.Counter(r["task"] for r in mixed) == {"a": 11, "b": 3, "c": 6}
    distinct = collections.Counter(r["task"] for r in {r["id"]: r for r in mixed}.values())
    assert distinct == {"a": 5, "b": 3, "c": 5}  # a repeats its 5 kept rows; never more than the cap
    assert mixed == mix(rows, weights={"nli": 2, "translation": 0}, cap=5, total=20, seed=1)
    assert mixed != mix(rows, weights={"nli": 2, "translation": 0}, cap=5, total=20, seed=2)
    # default total: every kept row of a weighted cluster once (5 + 3 + 5), with equal weights
    assert collections.Counter(r["task"] for r in mix(rows, weights={"translation": 0}, cap=5)) == {
        "a": 5, "b": 3, "c": 5}
    assert quotas({"x": 1, "y": 1}, {"x": 1.0, "y": 1.0}, 3) == {"x": 2, "y": 1}


def test_mix_of_real_rows_holds_a_cluster_out(rows):
    mixed = mix(rows["train"], weights={"nli": 0, "translation": 3}, cap=10, total=300, seed=0)
    counts = collections.Counter(r["task"] for r in mixed)
    assert len(mixed) == 300 and "entailment" not in counts
    sizes = {t: min(10, n) for t, n in collections.Counter(r["task"] for r in rows["train"]).items()}
    rates = {t: (0 if t == "entailment" else 3 if t == "translation" else 1) * n for t, n in sizes.items()}
    for task, n in counts.items():
        assert abs(n - 300 * rates[task] / sum(rates.values())) < 1, task
        assert len({r["id"] for r in mixed if r["task"] == task}) <= 10


@pytest.mark.parametrize("weights, match", [
    ({"nli": -1}, "'nli'"), ({"nli": float("nan")}, "'nli'"), ({"poetry": 1}, "'poetry'"), ({"nli": "2"}, "'nli'"),
])
def test_mix_names_a_bad_weight_or_cluster(weights, match):
    with pytest.raises(ValueError, match=match):
        mix(fake_rows({"a": ("nli", 2)}), weights=weights)


def test_mix_names_a_bad_row_and_refuses_an_empty_mixture():
    rows = fake_rows({"a": ("nli", 2)}) + [{"id": "odd-0", "task": "odd", "cluster": "poetry"}]
    with pytest.raises(ValueError, match=r"examples\[2\].*'odd-0'.*'poetry'"):
        mix(rows)
    with pytest.raises(ValueError, match="weight 0"):
        mix(fake_rows({"a": ("nli", 2)}), weights={"nli": 0})
    with pytest.raises(ValueError, match="cap"):
        mix(fake_rows({"a": ("nli", 2)}), cap=0)
