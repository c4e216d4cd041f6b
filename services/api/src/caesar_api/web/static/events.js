// The caller's job states as they happen: ``GET /api/v2/events`` (Server-Sent Events).
//
// EventSource cannot send an Authorization header, so the stream is read with fetch():
// the body is parsed as text/event-stream here. On any end (server timeout, restart,
// network) it reconnects after the server's ``retry:`` delay with ``Last-Event-ID``, so
// no state is missed; a resumed stream may repeat some, which the listeners tolerate.

/** Parse complete event blocks out of ``buffer``; returns ``[events, rest]``. */
export function parseEvents(buffer) {
  const events = [];
  const blocks = buffer.replace(/\r\n?/g, "\n").split("\n\n");
  const rest = blocks.pop();
  for (const block of blocks) {
    const event = { id: null, event: "message", data: [], retry: null };
    for (const line of block.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "data") event.data.push(value);
      else if (field === "id") event.id = value;
      else if (field === "event") event.event = value;
      else if (field === "retry" && /^\d+$/.test(value)) event.retry = Number(value);
    }
    events.push({ ...event, data: event.data.join("\n") });
  }
  return [events, rest];
}

export class EventStream {
  constructor(api, path, onEvent, onStatus) {
    this.api = api;
    this.path = path;
    this.onEvent = onEvent;
    this.onStatus = onStatus;
    this.lastId = null;
    this.retryMs = 2000;
    this.controller = null;
    this.closed = false;
  }

  start() {
    this.loop();
    return this;
  }

  close() {
    this.closed = true;
    if (this.controller) this.controller.abort();
  }

  async loop() {
    while (!this.closed) {
      this.controller = new AbortController();
      try {
        const headers = { Accept: "text/event-stream" };
        if (this.lastId) headers["Last-Event-ID"] = this.lastId;
        const response = await this.api.fetch(this.path, { headers, signal: this.controller.signal });
        if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
        this.onStatus("live");
        await this.read(response.body);
      } catch (error) {
        if (this.closed) return;
        this.onStatus("reconnecting");
      }
      if (!this.closed) await new Promise((resolve) => setTimeout(resolve, this.retryMs));
    }
  }

  async read(body) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      const [events, rest] = parseEvents(buffer);
      buffer = rest;
      for (const event of events) {
        if (event.retry !== null) this.retryMs = event.retry;
        if (event.id) this.lastId = event.id;
        if (event.event === "state" && event.data) {
          try {
            this.onEvent(JSON.parse(event.data));
          } catch { /* not one of ours */ }
        }
      }
    }
  }
}
