"""Tokenizers, saved as ``PreTrainedTokenizerFast`` so every HF tool can load them."""

from __future__ import annotations

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"


def char_tokenizer(alphabet: str) -> PreTrainedTokenizerFast:
    """One token per character of ``alphabet`` plus pad, begin, end and unknown tokens.

    The smallest honest tokenizer: ids 0..3 are the special tokens, then the
    characters in the order given. Characters outside the alphabet become ``<unk>``.
    """
    chars = list(dict.fromkeys(alphabet))
    if not chars:
        raise ValueError("char_tokenizer needs a non-empty alphabet")
    vocab = {tok: i for i, tok in enumerate([PAD, BOS, EOS, UNK, *chars])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    # Split between every pair of characters, keeping each as its own piece.
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD, bos_token=BOS, eos_token=EOS, unk_token=UNK
    )
