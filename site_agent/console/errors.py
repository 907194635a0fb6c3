"""What the console says when a page cannot be shown: each class's docstring is the sentence on
the calm error page (`pages.error_page`), `title` its heading and `status` the HTTP status."""

from __future__ import annotations

from transfer_codes.messages import from_docstring


class ConsoleError(Exception):
    """Something went wrong on this console. Try again in a moment; if it happens again, tell
    your IT help desk the time shown below."""

    status = 500
    title = "Something went wrong"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail or from_docstring(type(self)))

    @property
    def detail(self) -> str:
        return str(self.args[0])


class FormExpired(ConsoleError):
    """This form had expired, or did not come from this console, so nothing was done. Go back,
    reload the page and try again."""

    status = 403
    title = "Nothing was done"


class PageNotFound(ConsoleError):
    """There is no page at this address. Use the links at the top of the page."""

    status = 404
    title = "Page not found"


class MethodRefused(ConsoleError):
    """This page cannot be used that way. Go back and use the buttons on the page."""

    status = 405
    title = "Nothing was done"


class TooLarge(ConsoleError):
    """What was sent is larger than this console accepts. Nothing was done."""

    status = 413
    title = "Too large"


class BadForm(ConsoleError):
    """The form was not filled in as this page expects. Go back and try again."""

    status = 400
    title = "Nothing was done"
