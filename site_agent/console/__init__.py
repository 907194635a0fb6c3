"""The web console both site agents serve: the ER console and the trauma console are built on it.

The framework gives every page sign-in with local accounts (`site_agent.accounts`), server-side
sessions with an idle timeout, CSRF protection on every form, a page frame with the site name
and the signed-in user, calm error pages, one stylesheet and a little script, all served by
the agent itself. An agent declares its pages once, in its console package:

    # sending_site/console/__init__.py (templates in sending_site/console/templates/)
    routes = web.RouteTableDef()

    @routes.get("/")
    async def home(request: web.Request) -> web.Response:
        return render(request, "sender_home.html", studies=...)

    PAGES = AgentPages(title="ER console", templates=__name__, routes=routes)

and `site_agent.commands` serves them (`trauma-relay sender console`) with `make_app`, which
adds the agent's accounts, audit log and settings.

- Every route needs a signed-in user; `user_of(request)` names them.
- Every POST form holds `{{ csrf_field }}`; a script's `fetch` sends the token in the
  `X-CSRF-Token` header (the form field's value). Anything else is refused with a calm page.
- A page that refreshes itself sends `X-Console-Refresh: 1`, which does not count as activity.
- A page or list showing patients audits each person's opening of it, not its own refreshes:
  `page_views.audited` (one transfer's page) or `page_views.list_viewed` (a list).
- A page a POST redirects to can say something once to the person who posted it, and to no one
  else: `notices.leave(request, path, notice)`, then `notices.take(request)` in its GET.
- Errors: raise a `site_agent.console.errors` class, or list the agent's own exception classes
  in `AgentPages.errors`; their text is shown as it is.
- State: the agent's `AppKey`s and `cleanup_ctx` lifetimes go in `AgentPages.setup`, which
  is given the agent's settings.
"""

from site_agent.console.agent import AgentPages, AgentSettings, Link
from site_agent.console.app import make_app, serve
from site_agent.console.appkeys import user_of
from site_agent.console.pages import render

__all__ = ["AgentPages", "AgentSettings", "Link", "make_app", "render", "serve", "user_of"]
