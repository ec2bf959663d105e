"""Decoding from scratch equals `model.generate` with the same seed and the same filters."""

import pytest
import torch
from transformers.generation.logits_process import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

from course_lib.config import ModelConfig
from course_lib.generation import filter_logits, generate, next_token
from course_lib.models import build_decoder


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_decoder(ModelConfig(n_layer=2, n_head=2, d_model=32, max_seq_len=64), 40, eos_token_id=3).eval()


def test_filters_on_hand_made_logits():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept = lambda x: torch.isfinite(x)[0].tolist()
    assert kept(filter_logits(logits, top_k=2)) == [True, True, False, False]
    assert kept(filter_logits(logits, top_p=0.8)) == [True, True, False, False]  # 0.5 + 0.3 reaches 0.8
    assert kept(filter_logits(logits, top_p=0.81)) == [True, True, True, False]
    assert kept(filter_logits(logits, top_p=0.1)) == [True, False, False, False]  # the top token always stays
    torch.testing.assert_close(filter_logits(logits, temperature=0.5), logits * 2)
    assert next_token(logits).tolist() == [0]


@pytest.mark.parametrize("temperature,top_k,top_p", [(1.0, 0, 1.0), (0.7, 5, 1.0), (1.3, 0, 0.9), (0.9, 8, 0.6)])
def test_filters_equal_transformers_warpers(temperature, top_k, top_p):
    logits = torch.randn(4, 50, generator=torch.Generator().manual_seed(1))
    logits[0, :10] = 2.0  # ties at the cut
    ref = logits.clone()
    if temperature != 1.0:
        ref = TemperatureLogitsWarper(temperature)(None, ref)
    if top_k:
        ref = TopKLogitsWarper(top_k)(None, ref)
    if top_p < 1.0:
        ref = TopPLogitsWarper(top_p)(None, ref)
    torch.testing.assert_close(filter_logits(logits, temperature, top_k, top_p), ref)


@pytest.mark.parametrize(
    "kwargs",
    [dict(do_sample=False), dict(do_sample=True, temperature=0.8), dict(do_sample=True, top_k=5),
     dict(do_sample=True, top_p=0.7), dict(do_sample=True, temperature=1.5, top_k=10, top_p=0.9)],
)
def test_generate_equals_model_generate_with_the_same_seed(model, kwargs):
    prompt = torch.randint(4, 40, (3, 6), generator=torch.Generator().manual_seed(2))
    torch.manual_seed(7)
    mine = generate(model, prompt, 25, eos_token_id=3, pad_token_id=0, **kwargs)
    torch.manual_seed(7)
    ref = model.generate(
        prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=25, eos_token_id=3, pad_token_id=0,
        **{"top_k": 0, "top_p": 1.0, "temperature": 1.0, **kwargs},
    )
    assert torch.equal(mine, ref)


def test_finished_sequences_are_padded_and_generation_stops(model):
    prompt = torch.tensor([[5, 6, 7]])
    greedy = generate(model, prompt, 10)
    first = greedy[0, 3].item()
    stopped = generate(model, prompt, 10, eos_token_id=first, pad_token_id=0)
    assert stopped.tolist() == [[5, 6, 7, first]]  # the end token is kept; nothing follows it
