"""Surgery rules per layer kind, in an open registry (:func:`register_rule`).

Built-in rules cover the layers of MLPs and CNNs in Keras 3 and tf_keras (the frameworks' own
classes only; a user class of the same name needs a rule of its own). A layer without a rule is
copied as it is when the unit IDs reaching it are unchanged; when they change, the plan stops with
an error naming the layer.
"""

from keras_surgeon_rl.graph import OUTPUT_OF
from keras_surgeon_rl.rules.base import Context, Rule, Units
from keras_surgeon_rl.rules.conv import DepthwiseConvRule
from keras_surgeon_rl.rules.conv_kinds import ConvTransposeRule, GroupedConvRule, SeparableConvRule
from keras_surgeon_rl.rules.dense import DenseRule
from keras_surgeon_rl.rules.merge import ConcatenateRule, ElementwiseMerge
from keras_surgeon_rl.rules.ops import register_ops
from keras_surgeon_rl.rules.passthrough import LIKE_DATA, PassThrough, PerUnitConstants
from keras_surgeon_rl.rules.recurrent import GATES, BidirectionalRule, RecurrentRule, TimeDistributedRule
from keras_surgeon_rl.rules.registry import register_builtin, register_rule, registered, rule_for
from keras_surgeon_rl.rules.reshape import FlattenRule, PermuteRule, ReshapeRule

MASKING = ("Masking skips a step when all its features equal mask_value: with features added or removed, a step "
           "keeps its mask only where the new features equal mask_value too (and a removed feature was at it)")
_NOT_EXACT = "{} mixes units: changing the units reaching it changes every output (not function-preserving)"


def _register_builtins() -> None:
    register_builtin("Dense", DenseRule())
    for name in ("Conv1D", "Conv2D", "Conv3D"):
        register_builtin(name, GroupedConvRule())
    for name in ("SeparableConv1D", "SeparableConv2D"):
        register_builtin(name, SeparableConvRule())
    for name in ("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"):
        register_builtin(name, ConvTransposeRule())
    for name in ("DepthwiseConv1D", "DepthwiseConv2D"):
        register_builtin(name, DepthwiseConvRule())
    plain = PassThrough()
    for name in (
        "Activation", "ReLU", "LeakyReLU", "ELU", "ThresholdedReLU", "Identity", "Dropout",
        "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise", "GaussianDropout",
        "AlphaDropout", "ActivityRegularization",
        "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D",
        "AveragePooling3D", "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
        "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D", "ZeroPadding1D", "ZeroPadding2D",
        "ZeroPadding3D", "Cropping1D", "Cropping2D", "Cropping3D", "UpSampling1D", "UpSampling2D",
        "UpSampling3D",
    ):
        register_builtin(name, plain)
    register_builtin("PReLU", PassThrough(per_unit_weights={"alpha": LIKE_DATA}))
    bn = {"gamma": -1, "beta": -1, "moving_mean": -1, "moving_variance": -1}
    register_builtin("BatchNormalization", PassThrough(per_unit_weights=bn, axis_key="axis"))
    register_builtin("LayerNormalization", PassThrough(per_unit_weights={"gamma": -1, "beta": -1}, axis_key="axis",
                                                    note=_NOT_EXACT.format("LayerNormalization"), other_axis="exact"))
    register_builtin("Softmax", PassThrough(axis_key="axis", note=_NOT_EXACT.format("Softmax"), other_axis="exact"))
    register_builtin("Rescaling", PerUnitConstants({"scale": 1.0, "offset": 0.0}))
    register_builtin("Normalization", PerUnitConstants({"mean": 0.0, "variance": 1.0}, axis_key="axis",
                                                       per_unit_weights={"mean": -1, "variance": -1, "count": None},
                                                       other_axis="exact"))
    register_builtin("Flatten", FlattenRule())
    register_builtin("Permute", PermuteRule())
    register_builtin("Reshape", ReshapeRule())
    register_builtin("Concatenate", ConcatenateRule())
    for name in ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"):
        register_builtin(name, ElementwiseMerge())
    for name, gates in GATES.items():
        register_builtin(name, RecurrentRule(gates))
    register_builtin("Bidirectional", BidirectionalRule())
    register_builtin("Masking", PassThrough(note=MASKING))
    register_builtin(OUTPUT_OF, Rule())  # planned by the planner itself (_output_of); here for look-ups
    register_builtin("TimeDistributed", TimeDistributedRule())
    register_ops()


_register_builtins()

__all__ = ["Context", "Rule", "Units", "PassThrough", "LIKE_DATA", "register_rule", "registered", "rule_for"]
