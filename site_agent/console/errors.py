"""What the console says when a page cannot be shown: each class's docstring is the sentence on
the calm error page (`pages.error_page`), `title` its heading and `status` the HTTP status."""

from __future__ import annotations

from transfer_codes.messages import from_docstring


class ConsoleError(Exception):
    """Something went wrong on this console. Try again in a moment; if it happens again, tell
    your IT help desk the time shown below."""

    status = 500
    title = "Something went wrong"

    def __init_subclass__(cls, *, status: int = 500, title: str = "Nothing was done") -> None:
        super().__init_subclass__()
        cls.status, cls.title = status, title

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail or from_docstring(type(self)))

    @property
    def detail(self) -> str:
        return str(self.args[0])


class FormExpired(ConsoleError, status=403):
    """This form had expired, or did not come from this console, so nothing was done. Go back,
    reload the page and try again."""


class PageNotFound(ConsoleError, status=404, title="Page not found"):
    """There is no page at this address. Use the links at the top of the page."""


class MethodRefused(ConsoleError, status=405):
    """This page cannot be used that way. Go back and use the buttons on the page."""


class TooLarge(ConsoleError, status=413, title="Too large"):
    """What was sent is larger than this console accepts. Nothing was done."""


class BadForm(ConsoleError, status=400):
    """The form was not filled in as this page expects. Go back and try again."""
