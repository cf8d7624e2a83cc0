"""keras_surgeon_rl: change a trained Keras network by unit ID and keep what it learned."""

__version__ = "0.1.0"
