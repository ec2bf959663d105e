"""Chapter 03: documents, packing, the config path to real corpora, the `base` model and what it learned."""

import json
import math
import time

import pytest
import torch
from transformers import AutoTokenizer

from course_lib import cli, models, packing, zoo
from course_lib import pretraining as P
from course_lib.config import load_config
from course_lib.world import WorldDataError, build_world, split_documents


@pytest.fixture(autouse=True)
def cache(tmp_path_factory, monkeypatch):
    # One cache for the module: the ci tokenizer and base model are built once.
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "pretraining-cache"))


@pytest.fixture(scope="module")
def cfg():
    return load_config("ci")


# --------------------------------------------------------------------------- documents and packing


def test_pack_appends_end_tokens_and_cuts_full_blocks():
    assert packing.pack([[5, 6, 7], [8, 9], [3]], block_size=4, eos_id=0) == [[5, 6, 7, 0], [8, 9, 0, 3]]
    # 5 6 7 0 8 9 0 3 0: nine tokens make four blocks of two, and the last 0 is cut
    assert packing.pack([[5, 6, 7], [8, 9], [3]], block_size=2, eos_id=0) == [[5, 6], [7, 0], [8, 9], [0, 3]]
    assert packing.pack([[1]], block_size=4, eos_id=0) == []
    assert packing.pack([[1, 2, 3]], block_size=4, eos_id=0) == [[1, 2, 3, 0]]


def test_token_file_blocks_equal_pack(tmp_path, cfg):
    tok = zoo.get("tokenizer", cfg)
    texts = ["Jubal is a city in Nijol.", "주발은 니졸에 있는 도시이다.", "", "short"]
    path = tmp_path / "t.bin"
    n = packing.write_tokens(texts, tok, path, batch_size=3)
    blocks = packing.PackedBlocks(path, 5)
    expected = packing.pack(tok(texts, add_special_tokens=False)["input_ids"], 5, tok.eos_token_id)
    assert n == sum(len(t) + 1 for t in tok(texts, add_special_tokens=False)["input_ids"])
    assert len(blocks) == len(expected) == n // 5
    assert [blocks[i]["input_ids"].tolist() for i in range(len(blocks))] == expected
    assert torch.equal(blocks[0]["labels"], blocks[0]["input_ids"])
    with pytest.raises(IndexError):
        blocks[len(blocks)]


def test_document_positions_restart_at_every_end_token():
    assert packing.document_positions(torch.tensor([5, 6, 0, 7, 8, 0, 9]), 0).tolist() == [0, 1, 0, 1, 2, 0, 1]
    assert packing.document_positions(torch.tensor([[0, 1, 2], [3, 0, 0]]), 0).tolist() == [[0, 1, 2], [0, 0, 0]]
    assert packing.document_positions(torch.tensor([4, 5, 6]), 0).tolist() == [0, 1, 2]  # no end token: one document
    mask = models.document_mask(packing.document_positions(torch.tensor([5, 6, 0, 7]), 0))
    assert mask.tolist() == [[1, 0, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 1, 1]]


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_packed_documents_attend_only_to_themselves(tmp_path, cfg, arch, attention):
    """A document inside a packed block gets the logits it gets alone (after its <|endoftext|>)."""
    tok = zoo.get("tokenizer", cfg)
    texts = ["Jubal is a city in Nijol.", "주발은 니졸에 있는 도시이다.", "Gego was founded in 1124 by Seunghul Bin."]
    path = tmp_path / "t.bin"
    n = packing.write_tokens(texts, tok, path)
    row = packing.PackedBlocks(path, n, tok.eos_token_id)[0]
    assert packing.PackedBlocks(path, n)[0].keys() == {"input_ids", "labels"}  # without eos_id: plain blocks
    model = models.new_decoder(load_config("ci", [f"model.arch={arch}", "model.dropout=0.0", f"model.attention={attention}"]),
                        tok).eval()
    assert model.config._attn_implementation == attention
    ids, positions = row["input_ids"][None], row["position_ids"][None]
    with torch.no_grad():
        packed = model(input_ids=ids, position_ids=positions).logits[0]
        across = model(input_ids=ids).logits[0]  # no position ids: one causal mask over the whole block
        ends = [i for i, t in enumerate(row["input_ids"].tolist()) if t == tok.eos_token_id]
        for start, end in zip(ends, ends[1:]):  # the second and third documents, each from the eos before it
            alone = model(input_ids=ids[:, start:end]).logits[0]
            assert torch.allclose(packed[start:end], alone, atol=1e-4)
            assert not torch.allclose(across[start:end], alone, atol=1e-2)


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_eager_and_sdpa_attention_train_alike(cfg, arch):
    """model.attention changes how attention is computed, not what: same loss, gradients and dropout masks."""
    rows = [zoo.get("pretrain-data", cfg)["train"][i] for i in range(4)]
    batch = {k: torch.stack([r[k] for r in rows]) for k in rows[0]}
    tok = zoo.get("tokenizer", cfg)
    grads = {}
    for attention in ("sdpa", "eager"):
        model = models.new_decoder(load_config("ci", [f"model.arch={arch}", "model.dropout=0.1", f"model.attention={attention}"]),
                            tok).train()
        torch.manual_seed(1)  # the same dropout masks, if both draw them alike
        loss = model(**batch).loss
        loss.backward()
        grads[attention] = (loss.item(), torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert grads["sdpa"][0] == pytest.approx(grads["eager"][0], abs=1e-5)
    assert torch.allclose(grads["sdpa"][1], grads["eager"][1], atol=1e-5)


def test_world_corpus_excludes_news_after_the_cutoff(cfg):
    docs = list(P.corpus_documents(cfg))
    world = build_world(cfg.world)
    assert len(docs) == sum(d.in_pretraining for d in world.documents) > 0
    assert all(d["in_pretraining"] for d in docs) and not any(d["kind"] == "news" for d in docs)


def test_split_keeps_duplicate_clusters_together(cfg):
    docs = list(P.corpus_documents(cfg))
    train, held = split_documents(docs, 0.2)
    assert len(train) + len(held) == len(docs) and 0.1 < len(held) / len(docs) < 0.3
    clusters = lambda ds: {d["dup_cluster"] for d in ds if d["dup_cluster"]}
    assert clusters(held) and not clusters(train) & clusters(held)
    assert split_documents(docs, 0.2) == (train, held)  # deterministic


# --------------------------------------------------------------------------- the config path to real corpora


def _write_jsonl(path, texts):
    path.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts), encoding="utf-8")


STAND_IN = [f"Document {i}: the river town of Aram{i % 7} grows rice. 아람{i % 7} 마을은 쌀을 기른다." for i in range(60)]


def test_local_jsonl_folder_and_streamed_dataset_sources(tmp_path):
    _write_jsonl(tmp_path / "corpus.jsonl", STAND_IN[:5])
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "a.txt").write_text("first file", encoding="utf-8")
    (tmp_path / "hub").mkdir()
    _write_jsonl(tmp_path / "hub" / "train.jsonl", STAND_IN)
    overrides = lambda source, *more: [f"pretrain.source={source}", "pretrain.with_world=false", *more]
    get = lambda *args: [d["text"] for d in P.corpus_documents(load_config("ci", overrides(*args)))]
    assert get(tmp_path / "corpus.jsonl") == STAND_IN[:5]
    assert get(tmp_path / "texts") == ["first file"]
    # hf:<folder> streams a dataset folder the way hf:<hub name> streams the Hub (the gpu profile's path).
    assert get(f"hf:{tmp_path / 'hub'}", "pretrain.max_documents=7") == STAND_IN[:7]
    with pytest.raises(WorldDataError, match="offline"):
        get("hf:HuggingFaceFW/fineweb-edu:sample-10BT")
    # By default the world's documents come first, so the base model still learns the world's facts.
    mixed = list(P.corpus_documents(load_config("ci", [f"pretrain.source={tmp_path / 'corpus.jsonl'}"])))
    world = [d for d in build_world(load_config("ci").world).documents if d.in_pretraining]
    assert [d["text"] for d in mixed] == [d.text for d in world] + STAND_IN[:5]


def test_a_tiny_stand_in_pretrains_from_a_streamed_local_dataset(tmp_path):
    (tmp_path / "hub").mkdir()
    _write_jsonl(tmp_path / "hub" / "train.jsonl", STAND_IN)
    overrides = [
        f"pretrain.source=hf:{tmp_path / 'hub'}", "pretrain.with_world=false", "pretrain.vocab_size=300", "pretrain.block_size=16",
        "pretrain.eval_fraction=0.1", "model.d_model=32", "pretrain.train.max_steps=3", "pretrain.train.eval_every=0",
    ]
    cfg = load_config("ci", overrides)
    counts = json.loads((zoo.build("pretrain-data", cfg) / "counts.json").read_text())
    assert counts["train"]["documents"] + counts["eval"]["documents"] == 60 and counts["eval"]["documents"] > 0
    base = zoo.get("base", cfg)
    assert base.metrics[-1]["step"] == 3 and base.model.config.hidden_size == 32
    assert len(base.tokenizer) == 300 and base.model.config.vocab_size == 300
    # The entry point for long runs (accelerate launch / torchrun) trains the same model into a run folder.
    args = ["train", "base", "--profile", "ci", "--output-dir", str(tmp_path / "run")]
    assert cli.main(args + [a for o in overrides for a in ("--set", o)]) == 0
    assert (tmp_path / "run" / "final" / "model.safetensors").is_file() and (tmp_path / "run" / "checkpoints").is_dir()


# --------------------------------------------------------------------------- probes and prompts


def test_recall_probe_stops_before_the_value_and_avoids_ambiguous_starts(cfg):
    world = build_world(cfg.world)
    fact = world.facts(relation="country")[0]
    name, value = world.graph.name(fact.subject, "en"), world.graph.value_text(fact, "en")
    assert P.recall_probe(world, fact, "en") == f"{name} is a city in"
    assert world.statement(fact, "en") == f"{name} is a city in {value}."
    person = world.facts(relation="birth_year")[0]
    # "X was born in" could end with a year or a city: the year's probe uses another template.
    assert P.recall_probe(world, person, "en") == f"{world.graph.name(person.subject, 'en')} was born in the year"
    assert P.recall_probe(world, world.facts(relation="population")[0], "ko").endswith("의 인구는")


def test_recall_context_states_other_facts_without_the_answer(cfg):
    world = build_world(cfg.world)
    for fact in world.facts(after_cutoff=False)[:80]:
        for lang in ("en", "ko"):
            scene = P.recall_context(world, fact, lang)
            assert world.graph.value_text(fact, lang) not in scene and world.statement(fact, lang) not in scene
    fact = world.facts(relation="country")[0]
    name = world.graph.name(fact.subject, "en")
    assert P.recall_context(world, fact, "en") == " ".join(
        world.statement(f, "en") for f in world.facts(subject=fact.subject) if f.relation in ("population", "city_founded")
    ) and P.recall_context(world, fact, "en").startswith(name)


def test_icl_prompt_is_description_examples_question():
    prompt = P.icl_prompt("Answer.", [("Q1?", "A1"), ("Q2?", "A2")], "Q3?", "en")
    assert prompt == "Answer.\n\nQuestion: Q1?\nAnswer: A1\n\nQuestion: Q2?\nAnswer: A2\n\nQuestion: Q3?\nAnswer:"
    assert P.icl_prompt("답하세요.", [], "질문?", "ko") == "답하세요.\n\n질문: 질문?\n답:"


def test_bootstrap_interval_by_hand():
    assert P.bootstrap_interval([0.25] * 7) == (0.25, 0.25, 0.25)  # every resample has the same mean: no width
    right = [1, 0, 1, 1, 0]
    assert P.bootstrap_interval([a - b for a, b in zip(right, right)]) == (0.0, 0.0, 0.0)  # a column minus itself
    # two questions, one right: a resample's mean is 0, 1/2 or 1, a quarter, half and quarter of the time
    assert P.bootstrap_interval([0, 1]) == (0.5, 0.0, 1.0)
    # 0..99: the mean's standard error is 28.87 / sqrt(100); the 95% interval is about 1.96 of it either side
    mean, low, high = P.bootstrap_interval(range(100), resamples=2000, seed=1)
    assert mean == 49.5 and low == pytest.approx(49.5 - 1.96 * 2.887, abs=0.6) and high == pytest.approx(
        49.5 + 1.96 * 2.887, abs=0.6)
    assert P.bootstrap_interval(range(100), seed=1) != P.bootstrap_interval(range(100), seed=2)
    with pytest.raises(ValueError):
        P.bootstrap_interval([])


def test_icl_summary_pairs_questions_across_k():
    right = {0: [0, 0, 1, 0], 4: [1, 0, 1, 1]}
    scores = [{"facts": "fresh", "lang": "en", "k": k, "id": f"q{i}", "examples": min(k, 3), "correct": bool(c),
               "answer_nll": float(k == 0) + i} for k, column in right.items() for i, c in enumerate(column)]
    rows = {r["k"]: r for r in P.icl_summary(scores)}
    # one right of four: a resample of four has none right 32% of the time, three or four 5%, four right 0.4%
    assert (rows[0]["accuracy"], rows[0]["accuracy_low"], rows[0]["accuracy_high"]) == (0.25, 0.0, 0.75)
    assert (rows[0]["gain"], rows[0]["gain_low"], rows[0]["gain_high"]) == (0.0, 0.0, 0.0)
    # k = 4 gains on questions 0 and 3: differences 1, 0, 0, 1; all four 0 (or 1) is 1/16 of the resamples
    assert (rows[4]["gain"], rows[4]["gain_low"], rows[4]["gain_high"]) == (0.5, 0.0, 1.0)
    assert rows[4]["answer_nll"] == 1.5 and rows[0]["answer_nll"] == 2.5 and rows[0]["answer_nll_low"] >= 1
    assert (rows[4]["questions"], rows[4]["examples"], rows[0]["examples"]) == (4, 3.0, 0.0)
    assert [r["gain"] for r in P.icl_summary([s for s in scores if s["k"] == 4])] == [None]  # no k = 0 to pair with


def test_recall_by_frequency_bins():
    rows = [{"seen": s, "correct": c} for s, c in [(0, False), (1, False), (1, True), (9, True), (12, True), (8, False)]]
    assert P.recall_by_frequency(rows, bins=(0, 1, 8)) == [
        {"min_seen": 0, "max_seen": 1, "facts": 1, "recall": 0.0},
        {"min_seen": 1, "max_seen": 8, "facts": 2, "recall": 0.5},
        {"min_seen": 8, "max_seen": float("inf"), "facts": 3, "recall": 2 / 3},
    ]
    assert P.frequent_recall(rows, min_seen=8) == pytest.approx(2 / 3)


# --------------------------------------------------------------------------- the ci base model


@pytest.fixture(scope="module")
def base(cfg, tmp_path_factory):
    import os

    os.environ["COURSE_CACHE_DIR"] = str(tmp_path_factory.getbasetemp() / "pretraining-cache")
    start = time.perf_counter()
    trained = zoo.get("base", cfg)
    trained.build_seconds = time.perf_counter() - start
    return trained


def test_base_is_cached_by_the_zoo(cfg, base):
    start = time.perf_counter()
    again = zoo.get("base", cfg)
    assert again.path == base.path and zoo.manifest("base", cfg)["deps"].keys() == {"tokenizer", "pretrain-data"}
    assert time.perf_counter() - start < base.build_seconds
    assert not (base.path / "checkpoints").exists() and (base.path / "final" / "tokenizer.json").is_file()
    assert isinstance(again.tokenizer, type(AutoTokenizer.from_pretrained(base.path / "final")))


def test_base_learns_and_reports_held_out_perplexity(cfg, base):
    evals = [r["eval_loss"] for r in base.metrics if "eval_loss" in r]
    assert evals[-1] < evals[0] and evals[-1] < 0.4 * math.log(len(base.tokenizer)), evals  # log V: a uniform guess
    held_out = zoo.get("pretrain-data", cfg)["eval"]
    ppl = packing.perplexity(base.model, held_out)
    assert 1.0 < ppl < len(base.tokenizer) / 20  # far better than guessing among the vocabulary


def test_korean_fragments_under_an_english_only_vocabulary(cfg):
    rows = {(r["vocabulary"], r["lang"]): r["tokens_per_char"] for r in P.tokenizer_fragmentation(cfg, vocab_size=600)}
    assert rows["english-only", "ko"] > 1.5 * rows["bilingual", "ko"]  # Hangul falls back to 3 bytes per syllable
    assert rows["english-only", "en"] < rows["bilingual", "en"]  # English gives up a little to share the vocabulary
    assert rows["english-only", "ko"] > 3 * rows["english-only", "en"]


def test_often_seen_facts_are_recalled_more_than_rare_ones(cfg, base):
    rows = P.fact_recall(base.model, base.tokenizer, cfg)
    assert {r["lang"] for r in rows} == {"en", "ko"} and all(r["prompt"] and r["answer"] for r in rows)
    often = [r["correct"] for r in rows if r["seen"] >= 4]
    rare = [r["correct"] for r in rows if r["seen"] <= 1]
    assert len(often) > 50 and len(rare) > 50
    assert sum(often) / len(often) > sum(rare) / len(rare) + 0.1


def test_icl_prompts_hold_k_examples_of_the_same_kind(cfg, base, monkeypatch):
    seen = []
    monkeypatch.setattr(P.icl, "complete", lambda model, tok, prompts, n, bs=32: seen.append(prompts) or ["x"] * len(prompts))
    monkeypatch.setattr(base.model.config, "max_position_embeddings", 10_000)  # room for every example
    rows = P.icl_accuracy(base.model, base.tokenizer, cfg, shots=[0, 2], num_questions=5, langs=["en"])
    assert [(r["k"], r["questions"], r["accuracy"]) for r in rows] == [(0, 5, 0.0), (2, 5, 0.0)]
    zero, two = seen
    assert all(p.count("Question:") == 1 and p.endswith("Answer:") for p in zero)
    assert all(p.count("Question:") == 3 and p.count("\nAnswer: ") == 2 for p in two)
    assert all(z.split("Question: ")[-1] == t.split("Question: ")[-1] for z, t in zip(zero, two))  # same questions
    assert rows[1]["answer_nll"] < math.log(len(base.tokenizer))
    assert [r["examples"] for r in rows] == [0.0, 2.0]


def test_icl_prompts_drop_examples_that_do_not_fit_the_context(cfg, base, monkeypatch):
    seen = []
    monkeypatch.setattr(P.icl, "complete", lambda model, tok, prompts, n, bs=32: seen.append(prompts) or ["x"] * len(prompts))
    context = base.model.config.max_position_embeddings
    rows = P.icl_accuracy(base.model, base.tokenizer, cfg, shots=[30], num_questions=5, langs=["en"])
    assert all(len(base.tokenizer(p)["input_ids"]) < context for p in seen[0])  # 30 examples would not fit
    assert 0 < rows[0]["examples"] < 30 and rows[0]["examples"] == sum(p.count("Question:") - 1 for p in seen[0]) / 5


def test_icl_question_that_does_not_fit_even_alone_is_an_error(cfg, base, monkeypatch):
    # an entailment row carries its passage: in a 48-token context it does not fit even with no example
    monkeypatch.setattr(base.model.config, "max_position_embeddings", 48)
    with pytest.raises(ValueError, match=r"entailment question '.+' \(en\) needs \d+ tokens with no example, "
                                         r"more than the model's context of 48"):
        P.icl_accuracy(base.model, base.tokenizer, cfg, task="entailment", shots=[0], num_questions=30, langs=["en"])


def test_known_facts_keep_exactly_the_questions_whose_probe_was_right(cfg, base, monkeypatch):
    (_, en), (_, ko) = P.icl_items(cfg, "en"), P.icl_items(cfg, "ko")
    assert all(len(q["fact_ids"]) == 1 for q in en + ko)  # a closed-book question asks about one fact
    facts, ko_fact = [q["fact_ids"][0] for q in en[:4]], ko[-1]["fact_ids"][0]
    assert ko_fact not in facts
    # English: facts 0-2 recalled, 3 not; Korean: only ko_fact recalled (fact 0 is recalled in English only)
    table = [{"fact_id": f, "lang": "en", "correct": i < 3} for i, f in enumerate(facts)]
    table += [{"fact_id": facts[0], "lang": "ko", "correct": False}, {"fact_id": ko_fact, "lang": "ko", "correct": True}]
    assert P.known_facts(table) == {(f, "en") for f in facts[:3]} | {(ko_fact, "ko")}
    monkeypatch.setattr(P.icl, "fact_recall", lambda model, tok, cfg: table)
    monkeypatch.setattr(P.icl, "complete", lambda model, tok, prompts, n, bs=32: ["x"] * len(prompts))
    rows = P.icl_scores(base.model, base.tokenizer, cfg, facts="known", shots=[0], num_questions=1000)
    asked = {lang: [r["id"] for r in rows if r["lang"] == lang] for lang in ("en", "ko")}
    assert asked["en"] == [q["id"] for q in en if q["fact_ids"][0] in facts[:3]] and len(asked["en"]) >= 3
    assert asked["ko"] == [q["id"] for q in ko if q["fact_ids"][0] == ko_fact] and asked["ko"]
    monkeypatch.setattr(P.icl, "fact_recall", lambda model, tok, cfg: [])
    with pytest.raises(ValueError, match="no qa_closed question in en is about a fact the model recalls"):
        P.icl_scores(base.model, base.tokenizer, cfg, facts="known", shots=[0])


def test_fresh_curve_asks_about_passages_after_other_passages(cfg, base, monkeypatch):
    questions = {lang: P.fresh_items(cfg, lang, 4)[1] for lang in ("en", "ko")}
    seen = []

    def complete(model, tok, prompts, n, bs=32):  # right exactly when the prompt holds worked examples
        seen.append(prompts)
        lang = "ko" if prompts[0].startswith(P.PASSAGE_DESCRIPTIONS["ko"]) else "en"
        return [q["answer"] if "\n\n" + P.ICL_LABELS[lang][0] in p.split("\n\n", 1)[1] else "x"
                for q, p in zip(questions[lang], prompts)]

    monkeypatch.setattr(P.icl, "complete", complete)
    monkeypatch.setattr(base.model.config, "max_position_embeddings", 10_000)  # room for every example
    rows = P.icl_accuracy(base.model, base.tokenizer, cfg, facts="fresh", shots=[0, 2], num_questions=4)
    assert [(r["facts"], r["lang"], r["k"], r["questions"], r["examples"], r["accuracy"], r["gain"], r["gain_low"],
             r["gain_high"]) for r in rows] == [("fresh", lang, k, 4, float(k), float(k > 0), float(k > 0),
                                                  float(k > 0), float(k > 0)) for lang in ("en", "ko") for k in (0, 2)]
    for prompts, lang in zip(seen, ["en", "en", "ko", "ko"]):
        for q, p in zip(questions[lang], prompts):
            assert p.endswith(f"{q['context']}\n{q['question']}\n{P.ICL_LABELS[lang][2]}:")
            assert p.count(q["name"]) == q["context"].count(q["name"]) + 1  # no worked example is about them


def test_base_logs_the_induction_test_over_training(cfg, base):
    t = cfg.pretrain.train
    rows = P.read_induction(base.path)
    assert [r["step"] for r in rows] == sorted({0, *range(t.eval_every, t.max_steps + 1, t.eval_every), t.max_steps})
    last = P.repeated_tokens_loss(base.model, low=max(base.tokenizer.all_special_ids) + 1)
    assert rows[-1]["first"] == pytest.approx(last["first"], rel=1e-4)  # the final model's own test
    assert rows[0]["first"] == pytest.approx(math.log(len(base.tokenizer)), rel=0.1)  # at step 0: about a uniform guess
    with pytest.raises(FileNotFoundError, match="induction.jsonl"):
        P.read_induction(base.path / "final")


def test_reference_model_names_what_is_missing(cfg, monkeypatch):
    from course_lib.config import ConfigError

    with pytest.raises(ConfigError, match="zoo.reference_model='org/some-model'.*offline"):
        models.load_reference(load_config("ci", ["zoo.reference_model=org/some-model"]))
    monkeypatch.setitem(models.REFERENCE_MODELS, "ghost", ("no_such_package_here", "ghost.gguf"))
    with pytest.raises(FileNotFoundError, match="no-such-package-here"):
        models.load_reference(load_config("ci", ["zoo.reference_model=ghost"]))


def test_the_reference_model_copies_and_reads_its_prompt(cfg):
    """The measurements can show the effects: a real 135M model passes both (base at ci and laptop size does not)."""
    ref = models.load_reference(cfg)
    assert type(ref.model).__name__ == "LlamaForCausalLM" and 134e6 < models.count_parameters(ref.model) < 135e6
    induction = P.repeated_tokens_loss(ref.model, low=max(ref.tokenizer.all_special_ids) + 1)
    assert induction["second"] < 0.5 * induction["first"], induction
    rows = P.icl_accuracy(ref.model, ref.tokenizer, cfg, facts="fresh", shots=[0, 1], num_questions=20, langs=("en",),
                          batch_size=10)
    one_shot = next(r for r in rows if r["k"] == 1)
    assert one_shot["accuracy"] >= 0.5 and one_shot["gain"] >= 0.3 and one_shot["gain_low"] > 0, rows


@pytest.mark.xfail(strict=True, reason="the ci base (0.17M parameters, 43k tokens seen ~14 times) has no induction heads "
                   "(P.repeated_tokens_loss: the second copy of random tokens costs as much as the first): "
                   "it cannot copy from its prompt, so examples do not help. Given induction heads (a fifth of its "
                   "training rows copy rows), it still answers no question right at k = 0, 1 or 2")
def test_few_shot_beats_zero_shot_on_ci(cfg, base):
    rows = P.icl_accuracy(base.model, base.tokenizer, cfg, shots=[0, 2], num_questions=30)
    acc = {(r["k"], r["lang"]): r["accuracy"] for r in rows}
    assert min(acc[2, lang] - acc[0, lang] for lang in ("en", "ko")) >= 0.1, rows


class _Copier(torch.nn.Module):
    """A stand-in language model: puts all probability on the token ``period`` positions back (or uniform)."""

    def __init__(self, vocab, period=None):
        super().__init__()
        self.config = type("C", (), {"vocab_size": vocab})()
        self.period, self.device = period, torch.device("cpu")

    def forward(self, input_ids):
        logits = torch.zeros(*input_ids.shape, self.config.vocab_size)
        if self.period:
            # position t predicts token t + 1, which repeats token t + 1 - period
            src = input_ids[:, : input_ids.shape[1] - self.period]
            logits[:, self.period - 1 : -1].scatter_(-1, src[..., None], 50.0)
        return type("Out", (), {"logits": logits})()


def test_repeated_tokens_loss_separates_a_copier_from_a_guesser():
    uniform = P.repeated_tokens_loss(_Copier(100), length=20, batch=4)
    assert uniform["first"] == pytest.approx(math.log(100)) and uniform["second"] == pytest.approx(math.log(100))
    copier = P.repeated_tokens_loss(_Copier(100, period=20), length=20, batch=4)
    assert copier["first"] == pytest.approx(math.log(100), rel=0.05) and copier["second"] < 1e-3
    with pytest.raises(ValueError, match="low=100"):
        P.repeated_tokens_loss(_Copier(100), low=100)


def test_repeated_tokens_rows_are_new_and_reproducible():
    data = P.RepeatedTokens(size=3, length=5, vocab=7, seed=0)
    rows = [data[i]["input_ids"] for i in range(3)]
    assert all(r.shape == (10,) and torch.equal(r[:5], r[5:]) and int(r.max()) < 7 for r in rows)
    assert not torch.equal(rows[0], rows[1])
    assert torch.equal(P.RepeatedTokens(size=3, length=5, vocab=7, seed=0)[1]["input_ids"], rows[1])
    with pytest.raises(IndexError):
        data[3]
    with pytest.raises(ValueError, match="length >= 2"):
        P.RepeatedTokens(size=3, length=1, vocab=7)
    with pytest.raises(ValueError, match="min_period=9"):
        P.RepeatedTokens(size=3, length=5, vocab=7, min_period=9)


def test_repeated_tokens_with_min_period_repeat_at_a_distance_that_changes_by_row():
    data = P.RepeatedTokens(size=200, length=16, vocab=1000, seed=0, min_period=4)
    periods = []
    for i in range(len(data)):
        ids = data[i]["input_ids"]
        assert ids.shape == (32,)
        # the smallest shift under which the row equals itself; 1000 tokens make accidental repeats rare
        period = next(p for p in range(1, 33) if torch.equal(ids[p:], ids[: 32 - p]))
        periods.append(period)
    assert set(periods) == set(range(4, 17))  # every period from min_period to length occurs


def test_learn_to_copy_shows_induction_heads_forming(cfg):
    model, rows = P.learn_to_copy(cfg)  # periods 4..32 over 64 tokens, 600 steps
    ln_v = math.log(64)
    assert [(r["step"], r["length"]) for r in rows] == [(s, n) for s in range(0, 601, 50) for n in (8, 32)]
    start, end = rows[:2], rows[-2:]
    assert all(r["second"] == pytest.approx(ln_v, rel=0.1) for r in start)  # untrained: nothing is copied
    # Seeds 0, 1 and 2 end at 1.0-2.1 nats/token (8 tokens: about 0.5 of it is the unpredictable first token);
    # a model that only copies from 32 tokens back gets 3.4-3.8 at 8 tokens.
    for r in end:
        assert r["first"] > ln_v - 0.3, r  # the first copy stays unpredictable
        assert r["second"] < min(2.5, r["first"] - 2.0), r  # the second copy is predicted by copying
    for n in (13, 21):  # lengths the curve never measured copy too: the model matches content, not a distance
        assert P.repeated_tokens_loss(model, length=n)["second"] < 2.5
    with pytest.raises(ValueError, match="eval_every=0"):
        P.learn_to_copy(cfg, eval_every=0)
    with pytest.raises(ValueError, match="test_lengths"):
        P.learn_to_copy(cfg, test_lengths=(40,))


def test_learn_to_copy_at_one_distance_learns_the_distance_not_copying(cfg):
    """Every copy 32 tokens back: the model learns that offset, which fails at any other length."""
    _, rows = P.learn_to_copy(cfg, min_period=32, steps=150, eval_every=150)
    end = {r["length"]: r["second"] for r in rows if r["step"] == 150}
    assert end[32] < 1.5 and end[8] > 3.0, end


def test_copy_rows_repeat_ordinary_tokens_and_mix_in_at_their_share(tmp_path):
    tok = AutoTokenizer.from_pretrained(zoo.build("tokenizer", "ci"))
    low = max(tok.all_special_ids) + 1
    rows = P.CopyRows(5, 16, low, len(tok), seed=0, min_period=4)
    for i in range(5):
        row = rows[i]
        ids = row["input_ids"].tolist()
        assert len(ids) == 16 and min(ids) >= low and max(ids) < len(tok)
        period = next(p for p in range(4, 9) if ids[p:] == ids[:-p])  # periods run from 4 to 16 // 2
        assert ids == (ids[:period] * 16)[:16]  # its first p tokens, again and again
        assert row["labels"].tolist() == ids and row["position_ids"].tolist() == list(range(16))
    assert rows[3]["input_ids"].tolist() == P.CopyRows(5, 16, low, len(tok), seed=0)[3]["input_ids"].tolist()
    blocks = [{"input_ids": torch.arange(16), "labels": torch.arange(16), "position_ids": torch.arange(16)}] * 30
    mixed = P.with_copy_rows(blocks, 0.25, tok)
    assert len(mixed) == 40 and mixed[0] is blocks[0]  # 10 copy rows: a quarter of 40
    assert mixed[39].keys() == blocks[0].keys()
    assert P.with_copy_rows(blocks, 0.0, tok) is blocks
    with pytest.raises(ValueError, match="shares of extra rows"):
        P.with_copy_rows(blocks, 1.0, tok)
    make = lambda n: [blocks[0]] * n
    assert len(P.mixed_rows(blocks, [(0.25, make), (0.25, make)])) == 60  # 15 + 15 extra rows: half of 60
    with pytest.raises(ValueError, match="sum below 1"):
        P.mixed_rows(blocks, [(0.5, make), (0.5, make)])


def test_reading_rows_ask_about_invented_people_whose_answer_is_in_the_passage(cfg):
    from course_lib.world import build_world, fresh_names

    tok = AutoTokenizer.from_pretrained(zoo.build("tokenizer", "ci"))
    world = build_world(cfg.world)
    rows = P.ReadingRows(6, 256, tok, world, seed=0)  # ci's small vocabulary: a Korean exercise takes ~130 tokens
    taken = {n for e in world.entities("person") for n in (e.name.en, e.name.ko)}  # passages name world values, not people
    taken |= {n for name in fresh_names(world, 200, 0) for n in (name.en, name.ko)}  # what chapters ask about
    langs = set()
    for i in range(6):
        row = rows[i]
        assert row["input_ids"].shape == (256,) and row["labels"].tolist() == row["input_ids"].tolist()
        assert row["position_ids"].tolist() == list(range(256)) and row["input_ids"][0] == tok.eos_token_id
        text = tok.decode(row["input_ids"][1:])
        first = text.split("\n\n")[0].split("\n")  # the first exercise is whole: heading, passage, question, answer
        assert len(first) == 4, text
        passage, answer = first[1].split(": ", 1)[1], first[3].split(": ", 1)[1]
        assert answer and answer in passage  # the answer is only to be read, never remembered
        assert not any(name in text for name in taken)
        langs.add("ko" if "지문" in text else "en")
    assert langs == {"en", "ko"}
    assert tok.decode(rows[4]["input_ids"]) == tok.decode(P.ReadingRows(6, 256, tok, world, seed=0)[4]["input_ids"])
    assert tok.decode(rows[4]["input_ids"]) != tok.decode(P.ReadingRows(6, 256, tok, world, seed=1)[4]["input_ids"])
    with pytest.raises(IndexError):
        rows[6]


def test_copy_rows_never_hold_the_induction_test_sequences():
    """A base trained on copy rows must meet the test's random sequences for the first time."""
    test = P.RepeatedTokens(16, 50, 4000, seed=0)  # what repeated_tokens_loss draws (before shifting by low)
    rows = P.CopyRows(64, 100, 0, 4000, seed=0, min_period=50)  # rows of 100 = 50 + the same 50, like the test's
    firsts = {tuple(rows[i]["input_ids"][:50].tolist()) for i in range(64)}
    assert not firsts & {tuple(test[i]["input_ids"][:50].tolist()) for i in range(16)}
    assert (P.RepeatedTokens(3, 8, 50, seed=0)[1]["input_ids"].tolist()
            != P.RepeatedTokens(3, 8, 50, seed=0, stream=1)[1]["input_ids"].tolist())
