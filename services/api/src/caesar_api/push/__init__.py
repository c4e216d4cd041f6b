"""Push: Server-Sent Events and webhooks, fed by the job states the api already consumes.

Two feeds, for two different guarantees:

* **SSE** is per connection: any api replica may hold a client's stream, so each process
  reads *every* ``job.state.*`` event from its own queue ``api.push.<instance>``
  (exclusive, auto-delete, bounded) into an in-process hub (:mod:`.service.hub`) that
  fans out to the streams open in that process. Resuming reads the job's state history,
  which the projection writes in the same guarded update as the state itself.
* **Webhooks** are per event: the competing projection consumer (one replica per event)
  creates the deliveries, with ids that make a redelivered event a no-op, and every
  replica's delivery loop sends them, each claimed with a lease first.

``domain`` holds the pure rules (framing, event ids, resume plans, URL policy, signing,
backoff), ``adapters`` the database, broker and HTTP sides, ``service`` the use cases.
"""
