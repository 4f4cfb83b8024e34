"""A real Generator (real sampler, stop strings, tokenizer, server paths) whose
forward pass is replaced by a script, for behaviour a random-weight model never
shows on its own (a chat turn marker, logits that favour padding ids)."""
from __future__ import annotations

import numpy as np

import sutra_fast as sf


class ScriptedGenerator(sf.Generator):
    """Per generation (per state): call 1 (the prompt) makes ``script[0]`` the
    best token, call k ``script[k-1]``; the last entry repeats. ``boost`` ids
    get an even higher logit on every call (what the sampler must refuse if
    they are banned). Use it without a prompt cache: a cache hit skips call 1."""

    def __init__(self, base: sf.Generator, script, boost=()):
        super().__init__(base._model, base._config, base.path)
        self.script = list(script)
        self.boost = list(boost)
        # id(state) -> [state, forward calls so far]; holding the state keeps its id unique
        self._calls: dict = {}

    def forward(self, token_ids, state):
        entry = self._calls.setdefault(id(state), [state, 0])
        entry[1] += 1
        n = entry[1]
        logits = np.zeros(self.vocab_size, np.float32)
        logits[self.script[min(n - 1, len(self.script) - 1)]] = 20.0
        logits[self.boost] = 40.0
        return logits
