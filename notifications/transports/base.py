class TransportError(Exception):
    """A send that did not go out.

    `permanent`: the provider refused for good (retrying cannot help). `uncertain`: the request may
    have reached the provider (a read timeout), so resending blindly could text twice; the
    outcome is checked against the provider's log before anything is resent.
    """

    def __init__(self, message: str, *, permanent: bool = False, uncertain: bool = False, code: str = "") -> None:
        super().__init__(message)
        self.permanent = permanent
        self.uncertain = uncertain
        self.code = code
