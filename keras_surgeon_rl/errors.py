"""Errors raised by the surgeon."""


class SurgeryError(ValueError):
    """A spec or model the surgeon cannot work with.

    Raised while the plan is made, before any model is built: the message names the layer (or the
    spec key) at fault and says how to fix it.
    """
