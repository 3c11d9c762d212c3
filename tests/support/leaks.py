"""`no_leaks()`: fail the test when what runs inside leaves an unclosed session or connection.

Python reports those as ResourceWarning (ignored by pyproject, so recorded here explicitly) and
aiohttp as "Unclosed ..." messages to the loop's exception handler; both are collected after a
garbage collection and must be empty.
"""

from __future__ import annotations

import asyncio
import gc
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


@asynccontextmanager
async def no_leaks() -> AsyncIterator[None]:
    reports: list[str] = []
    gc.collect()  # garbage of earlier tests (an old event loop, say) is not this block's leak
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reports.append(context.get("message", "")))
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            yield
            await asyncio.sleep(0)
            gc.collect()
            await asyncio.sleep(0)
        leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
        assert not leaks, leaks
        assert not [m for m in reports if "nclosed" in m], reports
    finally:
        loop.set_exception_handler(previous)
