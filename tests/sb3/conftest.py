"""The SB3 suite runs with TensorFlow unimportable: ``keras_surgeon_rl.sb3`` must work on the ``sb3`` extra alone
(Keras on its PyTorch backend, ``make test-sb3`` sets ``KERAS_BACKEND=torch``)."""

import sys

sys.modules["tensorflow"] = None  # `import tensorflow` raises ImportError from here on
sys.modules["tf_keras"] = None
