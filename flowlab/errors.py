"""The one exception type flowlab raises for problems a user can fix."""


class FlowlabError(ValueError):
    """A bad input or an unusable environment.

    The message always says what was wrong and what to do about it. The CLI prints it
    without a traceback and exits with status 1.
    """
