"""Observation-feature and action IDs of the environments the library knows, by gymnasium id.

Framework-free: the keras-rl2 adapters (:mod:`keras_surgeon_rl.rl.envs`) and the gymnasium-API
subsets for Stable-Baselines3 (:mod:`keras_surgeon_rl.sb3.envs`) read the same tables.
"""

from __future__ import annotations

#: Observation features of ``CartPole-v0``/``CartPole-v1``: cart position and velocity, pole angle and
#: angular velocity.
CARTPOLE_FEATURES = ["x", "x_dot", "theta", "theta_dot"]
#: Actions of ``CartPole``: 0 pushes the cart to the left, 1 to the right.
CARTPOLE_ACTIONS = ["left", "right"]

#: Observation features of ``Acrobot-v1``: cosine and sine of both joint angles (``theta2`` relative
#: to the first link), then both angular velocities.
ACROBOT_FEATURES = [
    "cos_theta1",
    "sin_theta1",
    "cos_theta2",
    "sin_theta2",
    "theta1_dot",
    "theta2_dot",
]
#: Actions of ``Acrobot-v1``: torque -1, 0 or +1 on the actuated joint.
ACROBOT_ACTIONS = ["torque-1", "torque0", "torque+1"]

#: Observation features of ``LunarLander-v3``: position, linear velocity, angle, angular velocity
#: and whether the left and right legs touch the ground.
LUNARLANDER_FEATURES = [
    "x",
    "y",
    "x_dot",
    "y_dot",
    "angle",
    "angle_dot",
    "left_leg_contact",
    "right_leg_contact",
]
#: Actions of the discrete ``LunarLander-v3``: do nothing, fire the left orientation engine, fire
#: the main engine, fire the right orientation engine.
LUNARLANDER_ACTIONS = ["noop", "left", "main", "right"]

#: Observation features of ``Pendulum-v1``: cosine and sine of the pendulum's angle, and its angular
#: velocity. Its one continuous action is the torque.
PENDULUM_FEATURES = ["cos_theta", "sin_theta", "theta_dot"]

#: Colour channels (the last axis) of ``CarRacing-v3``'s 96×96 frames, and its discrete actions
#: (``continuous=False``).
CARRACING_CHANNELS = ["red", "green", "blue"]
CARRACING_ACTIONS = ["noop", "left", "right", "gas", "brake"]

#: Actions of every MinAtar game (``MinAtar/<Game>-v0``, the full action set), by name.
MINATAR_ACTIONS = ["noop", "left", "up", "right", "down", "fire"]
#: Input channels (the last observation axis) of the MinAtar games, MinAtar's own names, by game.
MINATAR_CHANNELS = {
    "Asterix": ["player", "enemy", "trail", "gold"],
    "Breakout": ["paddle", "ball", "trail", "brick"],
    "Freeway": ["chicken", "car", "speed1", "speed2", "speed3", "speed4", "speed5"],
    "Seaquest": ["sub_front", "sub_back", "friendly_bullet", "trail", "enemy_bullet", "enemy_fish", "enemy_sub",
                 "oxygen_guage", "diver_guage", "diver"],
    "SpaceInvaders": ["cannon", "alien", "alien_left", "alien_right", "friendly_bullet", "enemy_bullet"],
}
#: The minimal action set of each MinAtar game (``MinAtar/<Game>-v1``), by name.
MINATAR_MINIMAL_ACTIONS = {
    "Asterix": ["noop", "left", "up", "right", "down"],
    "Breakout": ["noop", "left", "right"],
    "Freeway": ["noop", "up", "down"],
    "Seaquest": MINATAR_ACTIONS,
    "SpaceInvaders": ["noop", "left", "right", "fire"],
}

# Feature and action IDs of the environments make_env knows, by gymnasium id.
_KNOWN_ENVS: dict[str, tuple[list[str], list[str] | None]] = {
    "CartPole-v0": (CARTPOLE_FEATURES, CARTPOLE_ACTIONS),
    "CartPole-v1": (CARTPOLE_FEATURES, CARTPOLE_ACTIONS),
    "Acrobot-v1": (ACROBOT_FEATURES, ACROBOT_ACTIONS),
    "LunarLander-v2": (LUNARLANDER_FEATURES, LUNARLANDER_ACTIONS),
    "LunarLander-v3": (LUNARLANDER_FEATURES, LUNARLANDER_ACTIONS),
    "LunarLanderContinuous-v2": (LUNARLANDER_FEATURES, None),
    "LunarLanderContinuous-v3": (LUNARLANDER_FEATURES, None),
    "Pendulum-v1": (PENDULUM_FEATURES, None),
    "CarRacing-v3": (CARRACING_CHANNELS, CARRACING_ACTIONS),  # with continuous=False for the actions
    # MinAtar (``pip install minatar``): channels as features, by name; -v1 is the minimal action set
    **{f"MinAtar/{game}-v0": (channels, MINATAR_ACTIONS) for game, channels in MINATAR_CHANNELS.items()},
    **{f"MinAtar/{game}-v1": (channels, MINATAR_MINIMAL_ACTIONS[game]) for game, channels in MINATAR_CHANNELS.items()},
}


def _register_minatar() -> None:
    """Register MinAtar's gymnasium ids (``MinAtar/Breakout-v0``, ...), once; they exist only after this."""
    import gymnasium

    if "MinAtar/Breakout-v0" in gymnasium.registry:
        return
    try:
        from minatar.gym import register_envs
    except ImportError as err:
        raise ImportError("MinAtar environments need the minatar package: pip install minatar") from err
    register_envs()  # logs a warning when seaborn (used only for rendering) is missing
