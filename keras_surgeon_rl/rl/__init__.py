"""keras-rl2 integration. Importing this package prepares keras-rl2 (see :mod:`.compat`).

Import it before anything imports TensorFlow, and keep Keras-3 code in another process: keras-rl2
disables eager execution for the whole process.
"""

from keras_surgeon_rl.rl.compat import setup

tf_keras = setup()

from keras_surgeon_rl.rl.envs import GymnasiumAdapter  # noqa: E402

__all__ = ["GymnasiumAdapter", "setup", "tf_keras"]
