"""The dashboard: one page and its script and style, shipped in the package and served at ``/ui/``. It adds no way
in: it is a client of the same API (a pasted token, kept in the tab's ``sessionStorage``, sent as a Bearer header),
and the page may run only its own script (a strict Content-Security-Policy)."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response

router = APIRouter(prefix="/ui", include_in_schema=False)

# Only the page's own files, from the page's own origin: no inline script or style, no other origin, no framing.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
_SCRIPT = "text/javascript; charset=utf-8"
ASSETS = {"dom.js": _SCRIPT, "charts.js": _SCRIPT, "app.js": _SCRIPT, "app.css": "text/css; charset=utf-8"}


def _read(name: str) -> bytes:
    return resources.files("api").joinpath("ui", name).read_bytes()


def _page() -> Response:
    return Response(
        _read("index.html"),
        media_type="text/html; charset=utf-8",
        headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"},
    )


@router.get("")
async def ui_root() -> RedirectResponse:
    return RedirectResponse("/ui/")


@router.get("/static/{name}")
async def ui_asset(name: str) -> Response:
    if name not in ASSETS:  # a fixed list: nothing else is reachable from here
        return Response(status_code=404, headers=SECURITY_HEADERS)
    return Response(_read(name), media_type=ASSETS[name], headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"})


@router.get("/")
@router.get("/jobs/{job_id}")
@router.get("/compare")
@router.get("/submit")
async def ui_page() -> Response:
    """Every view is the same page; its script draws the view the path names."""
    return _page()
