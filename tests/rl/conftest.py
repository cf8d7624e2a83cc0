"""keras-rl2 tests: one process, graph mode. Each test starts from an empty TensorFlow graph.

In graph mode every model ever built stays in the default graph, and building or running anything
gets slower as it grows; clearing the session after each test keeps the suite fast.
"""

from keras_surgeon_rl.rl import tf_keras  # first: sets up keras-rl2

import pytest


@pytest.fixture(autouse=True)
def _fresh_graph():
    yield
    tf_keras.backend.clear_session()
