"""IVOA UWS 1.1 (REST binding) at ``/uws/<app>/...``: one UWS job list per app.

``phases`` and ``params`` are the pure rules (phase mapping, form parsing), ``views`` turns
a draft or a job record into what a UWS job shows, ``xml`` renders it with the
``vo-models`` UWS models, ``drafts`` keeps jobs created without ``PHASE=RUN``,
``service`` holds the use cases (built on :mod:`caesar_api.service.jobs`), ``wait`` the
blocking ``WAIT`` and ``routes`` the aiohttp handlers. See ``docs/uws.md``.
"""
