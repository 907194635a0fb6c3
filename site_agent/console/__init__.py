"""The web console both site agents serve: the ER console and the trauma console are built on it.

The framework gives every page sign-in with local accounts (`site_agent.accounts`), server-side
sessions with an idle timeout, CSRF protection on every form, a page frame with the site name
and the signed-in user, calm error pages, one stylesheet and a little script, all served by
the agent itself. An agent adds its pages:

    # sending_site/console/__init__.py
    routes = web.RouteTableDef()

    @routes.get("/")
    async def home(request: web.Request) -> web.Response:
        return render(request, "home.html", studies=...)

    def make_console(settings: SenderSettings) -> web.Application:
        agent = AgentConsole(
            title="ER console",
            folder=site_folder(settings.state.folder, "sending"),
            templates="sending_site.console",   # its templates/home.html extends base.html
            routes=routes,
        )
        return make_app(agent, settings.console)

- Every route needs a signed-in user; `user_of(request)` names them.
- Every POST form holds `{{ csrf_field }}`; a script's `fetch` sends the token in the
  `X-CSRF-Token` header (the form field's value). Anything else is refused with a calm page.
- A page that refreshes itself sends `X-Console-Refresh: 1`, which does not count as activity.
- Errors: raise a `site_agent.console.errors` class, or list the agent's own exception classes
  in `AgentConsole.errors`; their text is shown as it is.
- State: the agent's `AppKey`s and `cleanup_ctx` lifetimes go in `AgentConsole.setup`.
"""

from site_agent.console.agent import AgentConsole, Link
from site_agent.console.app import make_app, serve
from site_agent.console.appkeys import user_of
from site_agent.console.pages import render

__all__ = ["AgentConsole", "Link", "make_app", "render", "serve", "user_of"]
