"""keras-rl2 tests: one process, graph mode. Each test starts from an empty TensorFlow graph and seed 0.

In graph mode every model ever built stays in the default graph, and building or running anything
gets slower as it grows; clearing the session before each test keeps the suite fast. Op seeds in
graph mode depend on the ops built before, so the clear also makes a test's random draws its own.
Seeding Python, NumPy and TensorFlow (keras-rl2's policies and memory sample from the global
``np.random`` and ``random``) makes a test's outcome independent of which tests ran before it;
a test that sets its own seed overrides it. With keras-rl2's soft target updates ordered by
:mod:`keras_surgeon_rl.rl.compat`, a seeded DQN fit gives the same agent on every run.
"""

from keras_surgeon_rl.rl import tf_keras  # first: sets up keras-rl2

import pytest


@pytest.fixture(autouse=True)
def _fresh_graph_and_seed():
    tf_keras.backend.clear_session()
    tf_keras.utils.set_random_seed(0)
