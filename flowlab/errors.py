"""The one exception type flowlab raises for problems a user can fix."""


class FlowlabError(ValueError):
    """A bad input or an unusable environment.

    The message always says what was wrong and what to do about it. The CLI prints it
    without a traceback and exits with status 1.
    """


class NonFiniteError(FlowlabError):
    """Sampling produced NaN or inf (the message names the step, or the input or weight that caused it).

    A subclass so that callers (e.g. the shape pipeline, which then checks its own inputs) recognise it
    by type, never by the message text."""
