"""Save and load what resuming a keras-rl2 ``DQNAgent`` needs, months later.

A directory holds the network (architecture, weights, unit IDs of features and actions), the
target network's weights, and the agent's settings, policies and optimizer config. The replay
memory is not saved (it can be large); a loaded agent starts with an empty one.

Example:
    >>> save_agent(agent, "runs/cartpole")
    >>> agent = load_agent("runs/cartpole")
    >>> new_agent = resume_dqn(agent, {"inputs": {"new": ["x", "x_dot", "theta", "theta_dot"]}})
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Optional

import rl.policy
from rl.agents.dqn import DQNAgent
from rl.memory import SequentialMemory

from keras_surgeon_rl.io import load_model, save_model, write_json_atomic
from keras_surgeon_rl.rl.compat import setup
from keras_surgeon_rl.rl.resume import SETTINGS, _agent_model, _copy_into, agent_settings, fresh_optimizer, network_of
from keras_surgeon_rl.unit_ids import get_unit_ids, set_unit_ids

logger = logging.getLogger(__name__)
tf_keras = setup()

FORMAT = 1


def _policy_config(policy) -> dict:
    config = {k: v for k, v in policy.get_config().items()}
    if "inner_policy" in config:
        config["inner_policy"] = _policy_config(policy.inner_policy)
    return {"class_name": type(policy).__name__, "config": config}


def _policy_from(config: dict):
    cls = getattr(rl.policy, config["class_name"], None)
    if cls is None:
        raise ValueError(f"unknown keras-rl2 policy {config['class_name']!r}; pass policy= to load_agent")
    kwargs = dict(config["config"])
    if "inner_policy" in kwargs:
        kwargs["inner_policy"] = _policy_from(kwargs["inner_policy"])
    return cls(**kwargs)


def save_agent(agent: DQNAgent, directory: os.PathLike) -> Path:
    """Save a compiled ``DQNAgent``'s networks, unit IDs and settings into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    network = network_of(agent)
    save_model(network, directory / "network.h5")
    network_of(agent, target=True).save_weights(str(directory / "target_weights.h5"))
    settings = agent_settings(agent)
    if settings.pop("processor") is not None:
        logger.warning("the agent's processor is not saved; pass processor= to load_agent")
    settings.pop("custom_model_objects")
    opt = fresh_optimizer(agent)
    data = {
        "format": FORMAT,
        "nb_actions": agent.nb_actions,
        "settings": settings,
        "policy": _policy_config(agent.policy),
        "test_policy": _policy_config(agent.test_policy),
        "optimizer": {"class_name": type(opt).__name__, "config": opt.get_config()},
        "memory": {"limit": agent.memory.limit, "window_length": agent.memory.window_length,
                   "ignore_episode_boundaries": agent.memory.ignore_episode_boundaries},
    }
    write_json_atomic(directory / "agent.json", json.loads(json.dumps(data, default=float)))
    return directory


def load_agent(directory: os.PathLike, processor: Any = None, policy: Any = None,
               test_policy: Any = None) -> DQNAgent:
    """A compiled ``DQNAgent`` as :func:`save_agent` left it (with an empty replay memory)."""
    directory = Path(directory)
    path = directory / "agent.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no saved agent here (expected agent.json from save_agent)")
    data = json.loads(path.read_text())
    if data.get("format") != FORMAT:
        raise ValueError(f"{path}: format {data.get('format')!r}, this version reads {FORMAT}")
    settings = {k: v for k, v in data["settings"].items() if k in SETTINGS}
    network = load_model(directory / "network.h5")
    dueling = bool(settings.get("enable_dueling_network"))
    model = _agent_model(network, dueling, data["nb_actions"])
    memory = SequentialMemory(**data["memory"])
    agent = DQNAgent(model=model, nb_actions=data["nb_actions"], memory=memory,
                     policy=policy or _policy_from(data["policy"]),
                     test_policy=test_policy or _policy_from(data["test_policy"]), processor=processor, **settings)
    _copy_into(agent.model, network, dueling)
    opt_cls = getattr(tf_keras.optimizers.legacy, data["optimizer"]["class_name"])
    agent.compile(opt_cls.from_config(data["optimizer"]["config"]), metrics=[])
    network_of(agent, target=True).load_weights(str(directory / "target_weights.h5"))
    ids = get_unit_ids(network)
    if dueling:
        ids["layers"][agent.model.layers[-2].name] = ids["layers"].pop(network.layers[-1].name, None)
    set_unit_ids(agent.model, inputs=ids["inputs"], layers={k: v for k, v in ids["layers"].items() if v is not None},
                 replace=True)
    return agent
