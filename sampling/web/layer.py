"""What every page shares: templates, the words, times, roles, the navigation.

A page is a Litestar handler under ``/ui/`` that returns :func:`render`'s
response. It states the roles it admits with :func:`roles` (the same
``opt={"roles": ...}`` the API uses, plus ``page``), so the app's auth middleware
checks the sign-in cookie exactly as it checks a bearer token, and the ``/ui``
router's exception handlers turn a missing, expired or revoked sign-in into a
redirect to the login page and a refusal into an HTML page rather than JSON.

Templates get these globals: ``t(key, **values)`` (the page's language),
``hm(epoch)`` and ``stamp(epoch)`` (the district's time zone from
``Settings.tz``), ``age(seconds)`` (``1 h 05 min``), ``num(n)`` (``1,234``), ``t_or(key,
fallback)`` (for words named by data), ``tz()`` (the zone's name),
``static(path)`` (a vendored asset's URL), ``device`` (the signed-in device or
None), ``lang``, ``csrf`` (the double-submit token forms send back) and ``nav``
(the links the role may open).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import pass_context
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Template
from litestar.template.config import TemplateConfig

from sampling import localtime
from sampling.api.auth import CSRF_COOKIE, services
from sampling.web import i18n

if TYPE_CHECKING:
    from litestar import Request

    from sampling.auth.models import Device

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
STATIC_URL = "/ui/static"
LOGIN_URL = "/ui/login"


def roles(*admitted: str) -> dict[str, Any]:
    """A page's ``opt``: the roles it admits, checked by the API's auth middleware."""
    return {"roles": tuple(admitted), "page": True}


@dataclass(frozen=True)
class Link:
    """A page the landing page and the header offer to the roles that may open it.

    ``href`` may hold ``{round}`` (one link per round) and ``{grid}`` (the
    signed-in grid team's grid).
    """

    key: str
    href: str
    roles: tuple[str, ...]
    #: Sort order in the header and on the landing page.
    order: int = 50

    @property
    def per_round(self) -> bool:
        return "{round}" in self.href


NAV: list[Link] = []


def link(entry: Link) -> Link:
    """Offer a page in the navigation (a page module calls this once at import)."""
    if entry not in NAV:
        NAV.append(entry)
        NAV.sort(key=lambda x: (x.order, x.key))
    return entry


def links_for(device: Device | None) -> list[Link]:
    if device is None:
        return []
    return [x for x in NAV if device.role in x.roles]


def lang(request: Request[Any, Any, Any]) -> i18n.Lang:
    return i18n.lang_of(request.cookies.get("lang"))


def tz(request: Request[Any, Any, Any]) -> str:
    found: str = services(request).settings.tz
    return found


def device_of(request: Request[Any, Any, Any]) -> Device | None:
    found: Device | None = request.state.get("device")
    return found


def age(seconds: float, language: i18n.Lang = i18n.DEFAULT) -> str:
    """A duration as people say it: ``45 s``, ``12 min``, ``3 h 05 min``, ``2 d 4 h``."""
    s = max(0, int(seconds))
    zh = language == "zh"
    if s < 60:
        return f"{s} 秒" if zh else f"{s} s"
    if s < 3600:
        return f"{s // 60} 分钟" if zh else f"{s // 60} min"
    if s < 86400:
        h, m = divmod(s // 60, 60)
        return f"{h} 小时 {m:02d} 分" if zh else f"{h} h {m:02d} min"
    d, h = divmod(s // 3600, 24)
    return f"{d} 天 {h} 小时" if zh else f"{d} d {h} h"


def _request(ctx: Any) -> Request[Any, Any, Any]:
    found: Request[Any, Any, Any] = ctx["request"]
    return found


@pass_context
def _t(ctx: Any, key: str, **values: object) -> str:
    return i18n.text(key, lang(_request(ctx)), **values)


@pass_context
def _hm(ctx: Any, epoch: float | None) -> str:
    return "–" if epoch is None else localtime.hm(epoch, tz(_request(ctx)))


@pass_context
def _stamp(ctx: Any, epoch: float | None) -> str:
    return "–" if epoch is None else localtime.stamp(epoch, tz(_request(ctx)))


@pass_context
def _age(ctx: Any, seconds: float) -> str:
    return age(seconds, lang(_request(ctx)))


@pass_context
def _t_or(ctx: Any, key: str, fallback: str) -> str:
    # For words that come from data (an alarm kind, a box state): a new kind the
    # catalogue does not know yet shows as itself rather than breaking the page.
    return _t(ctx, key) if key in i18n.CATALOGUE else fallback


@pass_context
def _tz(ctx: Any) -> str:
    return tz(_request(ctx))


def num(n: float) -> str:
    """``1,234,567``: large figures a person reads at a glance."""
    return f"{n:,}"


def _static(path: str) -> str:
    return f"{STATIC_URL}/{path}"


def _configure(engine: JinjaTemplateEngine) -> None:
    env = engine.engine
    env.globals.update(
        t=_t, t_or=_t_or, hm=_hm, stamp=_stamp, age=_age, static=_static, num=num, tz=_tz
    )
    # Autoescape everything we render (the default only escapes .html names).
    env.autoescape = True


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    return TemplateConfig(
        directory=TEMPLATES, engine=JinjaTemplateEngine, engine_callback=_configure
    )


def template_context(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """The layout's context for ``request`` (what :func:`render` adds to a page's own);
    for rendering a template outside a response, as an event stream does."""
    device = device_of(request)
    language = lang(request)
    return {
        "request": request,
        "device": device,
        "lang": language,
        "html_lang": i18n.HTML_LANG[language],
        "csrf": request.cookies.get(CSRF_COOKIE, ""),
        "nav": links_for(device),
        "path": request.url.path,
    }


def render(
    request: Request[Any, Any, Any],
    template: str,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> Template:
    """A page: ``template`` with the layout's context plus ``context``."""
    base = template_context(request)
    del base["request"]  # Litestar adds it
    return Template(
        template_name=template,
        context={**base, **context},
        status_code=status,
        headers=headers,
        media_type="text/html",
    )
