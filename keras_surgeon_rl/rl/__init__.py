"""keras-rl2 integration. Importing this package prepares keras-rl2 (see :mod:`.compat`).

Import it before anything imports TensorFlow, and keep Keras-3 code in another process: keras-rl2
disables eager execution for the whole process.
"""

from keras_surgeon_rl.rl.compat import setup

tf_keras = setup()

from keras_surgeon_rl.rl.envs import (  # noqa: E402
    ACROBOT_ACTIONS,
    ACROBOT_FEATURES,
    CARTPOLE_ACTIONS,
    CARTPOLE_FEATURES,
    LUNARLANDER_ACTIONS,
    LUNARLANDER_FEATURES,
    MINATAR_ACTIONS,
    MINATAR_CHANNELS,
    MINATAR_MINIMAL_ACTIONS,
    PENDULUM_FEATURES,
    ActionSubset,
    GymnasiumAdapter,
    ObservationSubset,
    make_env,
)
from keras_surgeon_rl.rl.resume import action_ids, network_of, resume_dqn  # noqa: E402
from keras_surgeon_rl.rl.resume_ddpg import resume_ddpg  # noqa: E402
from keras_surgeon_rl.rl.resume_sarsa import resume_sarsa  # noqa: E402
from keras_surgeon_rl.rl.resume_cem import resume_cem  # noqa: E402
from keras_surgeon_rl.rl.resume_naf import resume_naf  # noqa: E402
from keras_surgeon_rl.rl.agents import resume_agent  # noqa: E402

__all__ = [
    "ACROBOT_ACTIONS",
    "ACROBOT_FEATURES",
    "CARTPOLE_ACTIONS",
    "CARTPOLE_FEATURES",
    "LUNARLANDER_ACTIONS",
    "LUNARLANDER_FEATURES",
    "MINATAR_ACTIONS",
    "MINATAR_CHANNELS",
    "MINATAR_MINIMAL_ACTIONS",
    "PENDULUM_FEATURES",
    "ActionSubset",
    "GymnasiumAdapter",
    "ObservationSubset",
    "make_env",
    "resume_dqn",
    "resume_ddpg",
    "resume_sarsa",
    "resume_cem",
    "resume_naf",
    "resume_agent",
    "action_ids",
    "network_of",
    "setup",
    "tf_keras",
]
