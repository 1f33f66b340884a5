"""The project's own exceptions for mistakes a user can fix; everything else is a bug or an outage.

    ImageError (alexnet.images)     an upload that is not a usable picture
    WeightsError (alexnet.weights)  a weights file that cannot be loaded or does not fit
    DataError (alexnet.data)        an image folder that cannot be trained or mapped on
    ConfigError (alexnet.train)     a training setting that cannot work
    OptionError (here)              a choice outside what a function offers (method, layer, unit)

All derive from `UserError`, and through it from ValueError (so `except ValueError` callers
keep working). The app shows a UserError's message as a sentence; any other exception is
logged with its traceback and the visitor sees the server-error sentence (app/ui.py).
Messages name what was wrong and what to do instead.
"""
from __future__ import annotations


class UserError(ValueError):
    """A mistake in what the user gave; the message says what to do."""


class OptionError(UserError):
    """A choice outside what a function offers: an unknown method or layer, a unit out of range."""
