"""Regenerate examples/data/smoke.jsonl: a few hundred short, learnable chat and instruction examples.

Deterministic (seed 0). Half the rows are chat (`messages`), half instruction/response, so the
smoke run exercises both formats. Run: python examples/data/make_smoke.py
"""
from __future__ import annotations

import json
import os
import random

WORDS = ["cat", "dog", "sun", "tree", "book", "lamp", "river", "stone", "cloud", "apple", "train", "bird",
         "house", "green", "music", "paper", "chair", "glass", "light", "ocean"]


def _tasks(rng: random.Random) -> tuple[str, str]:
    kind = rng.randrange(5)
    if kind == 0:
        a, b = rng.randrange(10), rng.randrange(10)
        return f"What is {a} plus {b}?", f"{a} plus {b} is {a + b}."
    if kind == 1:
        w = rng.choice(WORDS)
        return f"Reverse the word {w}.", f"{w} reversed is {w[::-1]}."
    if kind == 2:
        w = rng.choice(WORDS)
        return f"Write {w} in capitals.", f"{w.upper()}"
    if kind == 3:
        w = rng.choice(WORDS)
        return f"How many letters are in {w}?", f"{w} has {len(w)} letters."
    a, b = rng.sample(WORDS, 2)
    return f"Which comes first in the alphabet, {a} or {b}?", f"{min(a, b)} comes first."


def main(n: int = 400) -> None:
    rng = random.Random(0)
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "smoke.jsonl")
    tmp = out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        for i in range(n):
            prompt, answer = _tasks(rng)
            if i % 2 == 0:
                row = {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]}
            else:
                row = {"instruction": prompt, "output": answer}
            fh.write(json.dumps(row) + "\n")
    os.replace(tmp, out)


if __name__ == "__main__":
    main()
