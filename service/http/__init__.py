"""The HTTP layer: middlewares, routes and handlers (the only place besides app/cli using aiohttp.web)."""
