"""Carrying a keras-rl2 replay memory over to an agent with changed actions."""

from __future__ import annotations

import logging
from collections import deque

import numpy as np

from rl.memory import SequentialMemory, sample_batch_indexes

logger = logging.getLogger(__name__)


class CarriedSequentialMemory(SequentialMemory):
    """A ``SequentialMemory`` whose entries can be marked unusable as transition starts.

    Carried-over transitions whose action no longer exists keep their observation (it is the next
    state of the transition before it) but are never sampled. New entries are always usable.
    """

    def __init__(self, limit: int, **kwargs):
        super().__init__(limit, **kwargs)
        self.usable = deque(maxlen=limit)  # kept in step with the memory's own deques

    def append(self, observation, action, reward, terminal, training=True, usable=True):
        super().append(observation, action, reward, terminal, training=training)
        if training:
            self.usable.append(bool(usable))

    def sample(self, batch_size, batch_idxs=None):
        if batch_idxs is None:
            batch_idxs = []
            for _ in range(1000):
                for b in sample_batch_indexes(self.window_length, self.nb_entries - 1, size=batch_size - len(batch_idxs)):
                    if self.usable[b] and not self.terminals[b - 1]:
                        batch_idxs.append(b)
                if len(batch_idxs) == batch_size:
                    break
            else:
                raise RuntimeError("the replay memory has too few usable transitions to fill a batch")
        return super().sample(batch_size, batch_idxs)


def carry_memory(old: SequentialMemory, action_map: np.ndarray) -> CarriedSequentialMemory:
    """A copy of ``old`` with actions renumbered; transitions of removed actions are never sampled.

    Args:
        old: the old agent's memory.
        action_map: for each old action index, its new index (``-1``: removed).

    Returns:
        A new memory with the same limit, window length and episode-boundary setting.
    """
    new = CarriedSequentialMemory(old.limit, window_length=old.window_length,
                                  ignore_episode_boundaries=old.ignore_episode_boundaries)
    dropped = 0
    for i in range(old.nb_entries):
        a = int(action_map[int(old.actions[i])])
        dropped += a < 0
        new.append(old.observations[i], max(a, 0), old.rewards[i], old.terminals[i], usable=a >= 0)
    logger.info("carried %d replay entries over (%d of removed actions, never sampled)", old.nb_entries, dropped)
    return new
