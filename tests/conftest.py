"""Fixtures shared by the test modules."""

import pytest
import torch

from course_lib.config import load_config


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run fastest on one thread, and steadiest on a CPU shared with other jobs.

    A module opts in with ``pytestmark = pytest.mark.usefixtures("one_thread")``.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def ci():
    """The ``ci`` profile's config."""
    return load_config("ci")


@pytest.fixture(scope="module")
def repo_cache():
    """The repo's own cache, where ``make course`` puts the laptop models, whatever another module exported.

    The laptop test modules opt in (``pytest.mark.usefixtures("repo_cache")``): they read and build there.
    """
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("COURSE_CACHE_DIR", raising=False)
        yield


@pytest.fixture(scope="module")
def tiny(ci, tmp_path_factory):
    """The ci tokenizer with the chat template and an untrained ci decoder (chapter 07's tests against TRL)."""
    import os

    from transformers import AutoTokenizer

    from course_lib import zoo
    from course_lib.instruction.formatting import add_chat_template
    from course_lib.models import new_decoder

    os.environ["COURSE_CACHE_DIR"] = str(tmp_path_factory.getbasetemp() / "alignment-cache")
    tokenizer = add_chat_template(AutoTokenizer.from_pretrained(zoo.build("tokenizer", ci)))
    return tokenizer, new_decoder(ci, tokenizer)
