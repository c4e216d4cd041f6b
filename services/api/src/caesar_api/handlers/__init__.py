"""One plain async function per route; dependencies come in as arguments.

Each HTTP handler takes the request, the :class:`~caesar_api.handlers.deps.Dependencies`
and the caller's owner id; the entrypoint does the wiring. Errors are raised as
:class:`~caesar_api.domain.errors.ApiError` and formatted in one place.
"""
