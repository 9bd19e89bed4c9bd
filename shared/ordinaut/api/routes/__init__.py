"""One module per resource; each exposes ``router: APIRouter`` (listed in ``app.ROUTE_MODULES``)."""
