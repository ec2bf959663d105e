"""Instruction data from outside the world: a local JSON Lines file, or a Hugging Face dataset (``instruct.source``).

The ``gpu`` profile tunes the 110M model on a real instruction dataset with the same
recipe. Two row formats are read, the two TRL reads:

- conversational: ``{"messages": [{"role": ..., "content": ...}, ...]}`` (system, user,
  assistant turns; at least one assistant turn);
- prompt-completion: ``{"prompt": "...", "completion": "..."}``, which becomes a user turn
  and an assistant turn.

``instruct.source`` is ``""`` (the world: the clusters and the reading exercises), a path
to a ``.jsonl`` file, or ``hf:<name>[:<config>]`` (the ``train`` split, read through
``datasets``; a Hub name is refused while the course is offline, a local dataset folder
is read). A row in neither format, or one that ``check_messages`` refuses, is an error
that names the source and the row: nothing is skipped.
"""

from __future__ import annotations

from pathlib import Path

from .formatting import check_messages


def _raw_rows(source: str, offline: bool):
    import datasets

    if source.startswith("hf:"):
        name, _, subset = source[3:].partition(":")
        if offline and not Path(name).expanduser().is_dir():
            raise ValueError(f"instruct.source={source!r} is a Hugging Face Hub dataset, but the course is offline "
                             "(zoo.offline=true or HF_HUB_OFFLINE=1): set zoo.offline=false, or point instruct.source "
                             "at a local .jsonl file or dataset folder")
        return datasets.load_dataset(name, subset or None, split="train")
    path = Path(source).expanduser()
    if path.suffix != ".jsonl" or not path.is_file():
        raise FileNotFoundError(f"instruct.source={source!r}: expected an existing .jsonl file or hf:<name>")
    return datasets.load_dataset("json", data_files=str(path), split="train")


def _messages(row: dict, row_id: str, source: str) -> list[dict]:
    if row.get("messages") is not None:
        return [{"role": m.get("role"), "content": m.get("content")} for m in row["messages"]]
    if row.get("prompt") is not None and row.get("completion") is not None:
        return [{"role": "user", "content": row["prompt"]}, {"role": "assistant", "content": row["completion"]}]
    raise ValueError(f"instruct.source={source!r}, row {row_id!r}: expected 'messages' or 'prompt' and 'completion', "
                     f"got the fields {sorted(k for k, v in row.items() if v is not None)}")


def external_conversations(source: str, *, offline: bool = True) -> list[dict]:
    """The rows of ``source`` as chat rows ``{"id", "messages", "answer"}`` (``answer``: the last assistant turn).

    A row's id is its ``id`` field when it has one, else its line number (0-based).
    """
    rows = []
    for i, row in enumerate(_raw_rows(source, offline)):
        row_id = str(row.get("id") or i)
        messages = check_messages(_messages(row, row_id, source), row_id)
        answer = [m["content"] for m in messages if m["role"] == "assistant"][-1]
        rows.append({"id": row_id, "messages": [dict(m) for m in messages], "answer": answer})
    if not rows:
        raise ValueError(f"instruct.source={source!r} has no rows")
    return rows
