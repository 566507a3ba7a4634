"""Training data: read records, turn them into token ids with loss labels, split, pack and batch.

Formats (spec.data.format, `auto` decides per record from its keys):
  chat        — a `messages` list rendered through the tokenizer's chat template;
  instruction — prompt (+ optional input) and response; through the chat template when the tokenizer
                has one, else an Alpaca-style "### Instruction / ### Response" layout;
  text        — plain text, every token is trained on.
With completion_only_loss, labels are -100 everywhere except the assistant/response tokens.

Packing concatenates examples into rows of seq_len and restarts position_ids at 0 for each example.
The trainer then passes no attention_mask, and transformers builds a block-diagonal causal mask from
the position_ids for sdpa/eager (masking_utils.find_packed_sequence_indices) or uses the varlen kernel
for flash-attention, so no token attends across an example boundary. transformers takes flash-attention's
variable-length path only for a packed batch of ONE row, so with flash attention a packed micro batch of
several rows is laid out as one row of batch_size x seq_len tokens (as transformers' DataCollatorWithFlattening
does): the same tokens and positions. sdpa and eager honour the boundaries row by row at any batch size
(checked by tests/test_train_integrity.py), and keep separate rows: one long row would make their dense
masked attention batch_size times costlier.
(transformers skips the detection when a KV cache is passed, so the trainer calls it with use_cache=False.)

Nothing degrades silently: a chat template whose renders are not prefix-stable is an error while
completion_only_loss is on (turning it off is an explicit spec choice), and the examples truncated at
seq_len, those dropped because no label token is left, and the label tokens trained on are counted
(DataStats: the trainer logs them and writes them to summary.json).
"""
from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from typing import Any, Sequence

from train.spec import DataSpec, SpecError

IGNORE = -100  # label value the loss skips (torch.nn.functional.cross_entropy's default ignore_index)
LOCAL_SUFFIXES = (".jsonl", ".json", ".parquet")


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]

    @property
    def n_label_tokens(self) -> int:
        return sum(1 for x in self.labels if x != IGNORE)


@dataclass
class DataStats:
    """What happened to the records on the way to training examples."""

    records: int = 0
    examples: int = 0
    truncated: int = 0  # examples cut at seq_len (kept, shorter)
    label_tokens_cut: int = 0  # label tokens lost to truncation (in kept and dropped examples)
    dropped_no_labels: int = 0  # records left with no token to train on (e.g. the response truncated away)
    label_tokens: int = 0  # tokens the loss is computed on
    tokens: int = 0

    def one_line(self) -> str:
        return (f"{self.records} records -> {self.examples} examples, {self.tokens} tokens, {self.label_tokens} "
                f"trained label tokens; {self.truncated} truncated at seq_len ({self.label_tokens_cut} label tokens "
                f"cut), {self.dropped_no_labels} dropped with no label token left")

    def to_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


# ----------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------
def read_records(data: DataSpec) -> list[dict[str, Any]]:
    """Rows of the dataset as dicts: a local JSONL/JSON/Parquet file or a hub dataset id."""
    path = data.path
    if not path:
        raise SpecError("data.path", "missing", "set data: {path: train.jsonl} in the job file or pass --data-path")
    # A hub dataset id is "name" or "org/name"; anything with a file suffix or a deeper path is local.
    looks_local = path.endswith(LOCAL_SUFFIXES) or path.startswith((".", "/", "~")) or path.count("/") > 1
    if os.path.isdir(path):
        raise SpecError("data.path", f"{path} is a directory", "give a .jsonl, .json or .parquet file")
    if os.path.isfile(path):
        rows = _read_local(path)
    elif looks_local:
        raise SpecError("data.path", f"{path} does not exist", "check the path (relative paths are relative to the job file)")
    else:
        rows = _read_hub(data)
    if data.max_examples is not None:
        rows = rows[: data.max_examples]
    if not rows:
        raise SpecError("data.path", f"{path} holds no examples", "give a file with at least one record")
    return rows


def _read_local(path: str) -> list[dict[str, Any]]:
    try:
        if path.endswith(".parquet"):
            import pyarrow.parquet as pq

            rows = pq.read_table(path).to_pylist()
        elif path.endswith(".json"):
            with open(path, encoding="utf-8") as fh:
                loaded = json.load(fh)
            rows = loaded if isinstance(loaded, list) else loaded.get("data", loaded.get("train", []))
        else:
            rows = []
            with open(path, encoding="utf-8") as fh:
                for lineno, line in enumerate(fh, 1):
                    if not line.strip():
                        continue
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError:
                        raise SpecError("data.path", f"{path} line {lineno} is not valid JSON",
                                        "write one JSON object per line") from None
    except SpecError:
        raise
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise SpecError("data.path", f"cannot read {path} ({type(exc).__name__})", "give a JSONL, JSON or Parquet file") from None
    if not all(isinstance(r, dict) for r in rows):
        raise SpecError("data.path", f"{path} records must be JSON objects", "write one object per record")
    return rows


def _read_hub(data: DataSpec) -> list[dict[str, Any]]:
    import datasets

    try:
        ds = datasets.load_dataset(data.path, split=data.split)
    except Exception as exc:  # offline, unknown id, missing split: all are input problems here
        offline = os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1"
        fix = ("download it first (huggingface-cli download --repo-type dataset ID) or unset HF_DATASETS_OFFLINE, "
               "or give a local .jsonl file") if offline else "check the dataset id and split, or give a local .jsonl file"
        raise SpecError("data.path", f"cannot load dataset {data.path!r} ({type(exc).__name__})", fix) from None
    if data.max_examples is not None:
        ds = ds.select(range(min(len(ds), data.max_examples)))
    return [dict(r) for r in ds]


# ----------------------------------------------------------------------------------------------
# Tokenizing
# ----------------------------------------------------------------------------------------------
def record_format(row: dict[str, Any], data: DataSpec) -> str:
    if data.format != "auto":
        return data.format
    if data.messages_field in row:
        return "chat"
    if data.prompt_field in row and data.response_field in row:
        return "instruction"
    if data.text_field in row:
        return "text"
    raise SpecError("data.format", f"cannot tell the format of a record with keys {sorted(row)}",
                    f"give '{data.messages_field}', '{data.prompt_field}'+'{data.response_field}' or "
                    f"'{data.text_field}' fields, or set data.format and the field names")


def _segments_chat(messages: list[dict[str, str]], tokenizer, completion_only: bool = True) -> list[tuple[str, bool]]:
    """Split a rendered conversation into (text, is_completion) pieces using prefix renders."""
    if not tokenizer.chat_template:
        raise SpecError("data.chat_template", "chat records need a chat template and the tokenizer has none",
                        "set data.chat_template (a Jinja template or a file), or use data.format: instruction")

    def render(msgs: list[dict[str, str]], gen: bool) -> str:
        try:
            return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=gen)
        except Exception as exc:  # jinja errors, raise_exception() in templates, bad roles
            raise SpecError("data.chat_template", f"the chat template fails on a record ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0][:120] if str(exc) else ''})",
                            "fix the record's roles or give data.chat_template") from None

    full = render(messages, False)
    segments: list[tuple[str, bool]] = []
    done = ""
    for k, msg in enumerate(messages):
        if msg.get("role") != "assistant":
            continue
        before = render(messages[:k], True) if k else ""
        after = render(messages[: k + 1], False)
        if not (before.startswith(done) and after.startswith(before) and full.startswith(after)):
            if completion_only:
                raise SpecError("data.chat_template",
                                "the chat template does not render conversations prefix-stably, so the assistant "
                                "turns cannot be found for completion-only loss",
                                "give data.chat_template a template whose renders extend each other, or set "
                                "data.completion_only_loss: false to train on whole conversations")
            return [(full, True)]
        segments += [(before[len(done):], False), (after[len(before):], True)]
        done = after
    segments.append((full[len(done):], False))
    return [(t, c) for t, c in segments if t]


def tokenize_record(row: dict[str, Any], data: DataSpec, tokenizer, seq_len: int,
                    stats: DataStats | None = None) -> Example | None:
    """One record -> Example, truncated to seq_len; None when nothing is left to train on (counted in stats)."""
    fmt = record_format(row, data)
    if fmt == "chat":
        messages = row.get(data.messages_field)
        if not isinstance(messages, list) or not messages:
            raise SpecError("data.format", f"'{data.messages_field}' must be a list of {{role, content}}",
                            "fix the record or set data.format")
        if not all(isinstance(m, dict) and isinstance(m.get("content", ""), str) for m in messages):
            raise SpecError("data.format", f"'{data.messages_field}' must be a list of {{role, content}}",
                            "fix the record or set data.format")
        segments = _segments_chat(messages, tokenizer, data.completion_only_loss)
    elif fmt == "instruction":
        prompt = str(row.get(data.prompt_field, ""))
        extra = row.get(data.input_field)
        if extra:
            prompt = f"{prompt}\n\n{extra}"
        response = str(row.get(data.response_field, ""))
        if tokenizer.chat_template:
            segments = _segments_chat([{"role": "user", "content": prompt}, {"role": "assistant", "content": response}],
                                      tokenizer, data.completion_only_loss)
        else:
            bos = tokenizer.bos_token or ""
            segments = [(f"{bos}### Instruction:\n{prompt}\n\n### Response:\n", False),
                        (response + (tokenizer.eos_token or ""), True)]
    else:
        text = row.get(data.text_field)
        if not isinstance(text, str):
            raise SpecError("data.text_field", f"record has no text field '{data.text_field}'",
                            "set data.text_field to the column with the text")
        segments = [((tokenizer.bos_token or "") + text + (tokenizer.eos_token or ""), True)]
    ids: list[int] = []
    labels: list[int] = []
    for text, is_completion in segments:
        piece = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids += piece
        labels += piece if (is_completion or not data.completion_only_loss) else [IGNORE] * len(piece)
    whole = sum(1 for x in labels[1:] if x != IGNORE)
    cut = len(ids) > seq_len
    ids, labels = ids[:seq_len], labels[:seq_len]
    # Next-token labels: position i predicts token i+1. Shift here so packing never predicts across examples.
    shifted = labels[1:] + [IGNORE]
    ex = Example(ids, shifted)
    if stats is not None:
        stats.records += 1
        stats.label_tokens_cut += whole - ex.n_label_tokens
        if not ex.n_label_tokens:
            stats.dropped_no_labels += 1
        elif cut:
            stats.truncated += 1
    return ex if ex.n_label_tokens else None


def build_examples_with_stats(rows: Sequence[dict[str, Any]], data: DataSpec, tokenizer,
                              seq_len: int) -> tuple[list[Example], DataStats]:
    stats = DataStats()
    out = [ex for ex in (tokenize_record(r, data, tokenizer, seq_len, stats) for r in rows) if ex is not None]
    if not out:
        raise SpecError("data.path", f"no example has any response tokens to train on ({stats.one_line()})",
                        "check data.format and the field names, or raise seq_len")
    stats.examples = len(out)
    stats.tokens = sum(len(e.input_ids) for e in out)
    stats.label_tokens = sum(e.n_label_tokens for e in out)
    return out, stats


def build_examples(rows: Sequence[dict[str, Any]], data: DataSpec, tokenizer, seq_len: int) -> list[Example]:
    return build_examples_with_stats(rows, data, tokenizer, seq_len)[0]


def apply_chat_template_override(tokenizer, data: DataSpec) -> None:
    """data.chat_template (inline Jinja, or a path to a file holding it) replaces the tokenizer's template."""
    text = data.chat_template
    if not text:
        return
    if os.path.isfile(os.path.expanduser(text)):
        with open(os.path.expanduser(text), encoding="utf-8") as fh:
            text = fh.read()
    elif "{{" not in text and "{%" not in text:
        raise SpecError("data.chat_template", f"{text!r} is neither a file nor a Jinja template",
                        "give the path of a .jinja file or the template text itself")
    tokenizer.chat_template = text
    probe = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    try:
        rendered = tokenizer.apply_chat_template(probe, tokenize=False)
    except Exception as exc:
        raise SpecError("data.chat_template", f"does not render a user/assistant exchange ({type(exc).__name__})",
                        "fix the template") from None
    if "hello" not in rendered:
        raise SpecError("data.chat_template", "renders without the messages' content",
                        "the template must print each message's content")


def special_token_ids(examples: Sequence[Example], tokenizer) -> list[int]:
    """Ids of special/added tokens that occur in the training examples (chat markers and the like)."""
    special = set(tokenizer.all_special_ids) | set(getattr(tokenizer, "added_tokens_decoder", {}) or {})
    seen: set[int] = set()
    for ex in examples:
        seen.update(t for t in ex.input_ids if t in special)
    return sorted(seen)


def split_examples(examples: list[Example], eval_fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """Deterministic shuffle, then the first round(n * eval_fraction) examples are the eval set."""
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    n_eval = int(round(len(examples) * eval_fraction)) if len(examples) > 1 else 0
    eval_set = [examples[i] for i in order[:n_eval]]
    train_set = [examples[i] for i in order[n_eval:]]
    return train_set, eval_set


# ----------------------------------------------------------------------------------------------
# Batching
# ----------------------------------------------------------------------------------------------
@dataclass
class Batch:
    """One micro batch as plain lists (the trainer moves it to tensors on its device)."""

    input_ids: list[list[int]]
    labels: list[list[int]]
    position_ids: list[list[int]]
    attention_mask: list[list[int]] | None  # None when packed (the mask comes from position_ids)
    n_tokens: int  # real (non-pad) tokens
    n_label_tokens: int


def pack_rows(examples: Sequence[Example], seq_len: int, pad_id: int) -> list[Batch]:
    """Greedy first-fit in order: concatenate examples into rows of at most seq_len tokens."""
    rows: list[tuple[list[int], list[int], list[int]]] = []
    cur_ids: list[int] = []
    cur_lab: list[int] = []
    cur_pos: list[int] = []
    for ex in examples:
        if cur_ids and len(cur_ids) + len(ex.input_ids) > seq_len:
            rows.append((cur_ids, cur_lab, cur_pos))
            cur_ids, cur_lab, cur_pos = [], [], []
        cur_ids += ex.input_ids
        cur_lab += ex.labels
        cur_pos += list(range(len(ex.input_ids)))
    if cur_ids:
        rows.append((cur_ids, cur_lab, cur_pos))
    out = []
    for ids, lab, pos in rows:
        n = len(ids)
        pad = seq_len - n
        out.append(([*ids, *[pad_id] * pad], [*lab, *[IGNORE] * pad], [*pos, *range(pad)], n,
                    sum(1 for x in lab if x != IGNORE)))
    return [Batch([r[0]], [r[1]], [r[2]], None, r[3], r[4]) for r in out]


def epoch_batches(examples: Sequence[Example], *, batch_size: int, seq_len: int, packing: bool, pad_id: int,
                  seed: int, epoch: int, flatten_packed: bool = False) -> list[Batch]:
    """The micro batches of one epoch, in a deterministic order given (seed, epoch). `flatten_packed` lays a
    packed micro batch out as one row (for flash attention's variable-length path, see the module docstring)."""
    order = list(range(len(examples)))
    random.Random(seed * 1000 + epoch).shuffle(order)
    shuffled = [examples[i] for i in order]
    if packing:
        rows = pack_rows(shuffled, seq_len, pad_id)
        batches = []
        for i in range(0, len(rows), batch_size):
            group = rows[i: i + batch_size]
            if not flatten_packed:
                batches.append(Batch([r.input_ids[0] for r in group], [r.labels[0] for r in group],
                                     [r.position_ids[0] for r in group], None,
                                     sum(r.n_tokens for r in group), sum(r.n_label_tokens for r in group)))
                continue
            # one row of len(group) x seq_len tokens: positions restart per example
            batches.append(Batch([[t for r in group for t in r.input_ids[0]]], [[t for r in group for t in r.labels[0]]],
                                 [[t for r in group for t in r.position_ids[0]]], None,
                                 sum(r.n_tokens for r in group), sum(r.n_label_tokens for r in group)))
        return batches
    batches = []
    for i in range(0, len(shuffled), batch_size):
        group = shuffled[i: i + batch_size]
        width = max(len(e.input_ids) for e in group)
        width = min(seq_len, (width + 7) // 8 * 8)  # multiples of 8 for tensor cores
        ids, labs, poss, masks = [], [], [], []
        for e in group:
            pad = width - len(e.input_ids)
            ids.append(e.input_ids + [pad_id] * pad)
            labs.append(e.labels + [IGNORE] * pad)
            poss.append(list(range(width)))
            masks.append([1] * len(e.input_ids) + [0] * pad)
        batches.append(Batch(ids, labs, poss, masks, sum(len(e.input_ids) for e in group),
                             sum(e.n_label_tokens for e in group)))
    return batches
