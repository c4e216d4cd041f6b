"""In-memory fakes of the services' repositories and outbox, for fast handler tests.

Each fake keeps the one behaviour the use cases rely on (guarded updates that apply only
while the document still matches, writes that happen once) and records what would have
been published, so a test asserts on events without a broker or a database.
"""
