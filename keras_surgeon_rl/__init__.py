"""keras_surgeon_rl: change a trained Keras network by unit ID and keep what it learned.

    >>> from keras_surgeon_rl import surgeon
    >>> new_model = surgeon.transplant(old_model, spec)

Nothing here imports Keras until a model is handed over, so the same code serves Keras 3 models and
the tf_keras models of keras-rl2 (in their own process).
"""

from keras_surgeon_rl import surgeon
from keras_surgeon_rl.errors import SurgeryError
from keras_surgeon_rl.rules import PassThrough, Rule, register_rule
from keras_surgeon_rl.spec import Spec
from keras_surgeon_rl.unit_ids import get_unit_ids, set_unit_ids

__version__ = "0.1.0"

__all__ = ["surgeon", "SurgeryError", "Spec", "Rule", "PassThrough", "register_rule", "get_unit_ids",
           "set_unit_ids", "__version__"]
