"""Errors a user sees by name (kept free of heavy imports so the CLI can catch them cheaply)."""


class RunDirectoryError(RuntimeError):
    """The run directory is unusable: finished already, another config, unwritable or corrupt files."""


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or inf; the message names the loss and the agent step."""
