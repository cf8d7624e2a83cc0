"""Errors raised by the surgeon."""


class SurgeryError(ValueError):
    """A spec, model or file the surgeon cannot work with.

    Raised while the plan is made, before any model is built: the message names the layer (or the
    spec key, or the file) at fault and says how to fix it.
    """


class ModelFileError(SurgeryError):
    """A model, unit-ID or agent file that cannot be read or written, with the path in the message."""
