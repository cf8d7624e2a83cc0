"""keras-rl2's Atari network (``examples/dqn_atari.py``), layer for layer, for both test suites."""


def dqn_atari(K, n_actions: int = 4, window: int = 4):
    """The example's network in Keras flavour ``K`` (``keras`` or ``tf_keras``): ``Permute((2, 3, 1))``
    turns a window of 84x84 frames into channels, then the Nature-DQN convs (each followed by an
    ``Activation`` layer), Flatten, Dense 512 and Dense(n_actions) + ``Activation('linear')``."""
    L = K.layers
    return K.Sequential([
        L.Permute((2, 3, 1), input_shape=(window, 84, 84), name="permute"),
        L.Conv2D(32, (8, 8), strides=(4, 4), name="conv1"), L.Activation("relu", name="relu1"),
        L.Conv2D(64, (4, 4), strides=(2, 2), name="conv2"), L.Activation("relu", name="relu2"),
        L.Conv2D(64, (3, 3), strides=(1, 1), name="conv3"), L.Activation("relu", name="relu3"),
        L.Flatten(name="flat"),
        L.Dense(512, name="fc"), L.Activation("relu", name="relu4"),
        L.Dense(n_actions, name="q"), L.Activation("linear", name="linear"),
    ], name="dqn_atari")
