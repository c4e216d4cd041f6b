// The live job list: GET /api/v2/jobs (pages of the server's largest size), kept current
// by the per-user event stream: each event re-reads that one job and redraws its row.
// Rows are built once per job and updated in place, so 1,000 jobs render in one pass.

import { byId, el, formatDuration, formatTime, shortId } from "./dom.js";

export const FINAL = new Set(["SUCCESS", "FAILURE", "CANCELED", "TIMED-OUT", "ABORTED", "DELETED"]);

/** What the "Queue / hold" cell says (pure). */
export function waitText(job) {
  if (job.state === "HELD") return job.hold_reason || job.reason || "held";
  if (job.queue_position) return `#${job.queue_position} in queue`;
  return "";
}

/** Elapsed seconds: the job's own figure, or since it started while it runs (pure). */
export function elapsedOf(job, now = Date.now()) {
  if (job.elapsed_s !== null && job.elapsed_s !== undefined) return job.elapsed_s;
  if (job.started_at && !FINAL.has(job.state)) return (now - new Date(job.started_at).getTime()) / 1000;
  return null;
}

/**
 * The job as of a state ``event`` of the per-user stream. A live event can arrive before
 * the api's read model has applied it (the api waits for that only before pushing a final
 * state), so a re-read still showing the previous state is tried again a few times; if it
 * still lags, the event's state is shown with the record's other fields. Events of one
 * stream come in order, so the latest event is the job's current state.
 */
export async function jobAtEvent(api, event, tries = 6) {
  let job = null;
  for (let attempt = 0; attempt < tries; attempt += 1) {
    job = await api.json(`/api/v2/jobs/${encodeURIComponent(event.job_id)}`);
    const behind = job.state !== event.state && (job.attempt || 0) <= (event.attempt || 0) && !FINAL.has(job.state);
    if (!behind) return job;
    await new Promise((resolve) => setTimeout(resolve, 250 * (attempt + 1)));
  }
  return { ...job, state: event.state };
}

export function stateBadge(state) {
  return el("span", { class: `state state-${state}`, text: state });
}

export class JobsView {
  constructor(api, pageSize) {
    this.api = api;
    this.pageSize = pageSize;
    this.rows = new Map();
    this.next = null;
    this.loaded = false;
    this.pending = new Map();
    byId("jobs-more").addEventListener("click", () => this.more());
    setInterval(() => this.tick(), 1000);
  }

  async show() {
    if (this.loaded) return;
    performance.mark("jobs-fetch-start");
    const page = await this.api.json(`/api/v2/jobs?limit=${this.pageSize}`);
    performance.mark("jobs-fetched");
    byId("jobs-body").replaceChildren();
    this.rows.clear();
    this.append(page.items);
    this.next = page.next;
    this.loaded = true;
    this.afterRender();
    performance.mark("jobs-rendered");
    byId("jobs-table").dataset.rendered = String(this.rows.size);
  }

  async more() {
    if (!this.next) return;
    const page = await this.api.json(this.next);
    this.append(page.items);
    this.next = page.next;
    this.afterRender();
  }

  afterRender() {
    byId("jobs-more").hidden = !this.next;
    byId("jobs-empty").hidden = this.rows.size > 0;
    byId("jobs-table").hidden = this.rows.size === 0;
  }

  append(jobs) {
    const fragment = document.createDocumentFragment();
    for (const job of jobs) {
      if (this.rows.has(job.job_id)) continue;
      const row = this.buildRow(job);
      fragment.append(row.tr);
    }
    byId("jobs-body").append(fragment);
  }

  buildRow(job) {
    const cells = {
      id: el("td"),
      app: el("td"),
      state: el("td"),
      pool: el("td"),
      wait: el("td"),
      submitted: el("td"),
      elapsed: el("td", { class: "num" }),
      actions: el("td"),
    };
    const tr = el("tr", { dataset: { jobId: job.job_id } }, ...Object.values(cells));
    const row = { tr, cells, job: null };
    this.rows.set(job.job_id, row);
    this.fill(row, job);
    return row;
  }

  fill(row, job) {
    const { cells } = row;
    row.job = job;
    row.tr.dataset.state = job.state;
    cells.id.replaceChildren(el("a", { href: `#/jobs/${job.job_id}`, title: job.job_id, text: shortId(job.job_id) }));
    cells.app.textContent = job.tag ? `${job.app} (${job.tag})` : job.app;
    cells.state.replaceChildren(stateBadge(job.state));
    cells.pool.textContent = job.pool || "";
    cells.wait.textContent = waitText(job);
    cells.submitted.textContent = formatTime(job.submitted_at);
    cells.elapsed.textContent = formatDuration(elapsedOf(job));
    if (FINAL.has(job.state)) {
      cells.actions.replaceChildren();
    } else if (!cells.actions.firstChild) {
      cells.actions.append(el("button", {
        type: "button",
        class: "cancel",
        "aria-label": `Cancel job ${shortId(job.job_id)}`,
        text: "Cancel",
        onclick: () => this.cancel(job.job_id),
      }));
    }
  }

  /** Running jobs' elapsed time moves every second. */
  tick() {
    for (const row of this.rows.values()) {
      if (row.job && row.job.started_at && !FINAL.has(row.job.state)) {
        row.cells.elapsed.textContent = formatDuration(elapsedOf(row.job));
      }
    }
  }

  async cancel(jobId) {
    const job = await this.api.post(`/api/v2/jobs/${jobId}/cancel`).catch(() => null);
    if (job) this.upsert(job);
  }

  upsert(job) {
    const row = this.rows.get(job.job_id);
    if (row) {
      this.fill(row, job);
      return;
    }
    if (!this.loaded) return;
    const created = this.buildRow(job);
    byId("jobs-body").prepend(created.tr);
    this.afterRender();
  }

  /** A state event: re-read the job (a burst of events for one job: the last one wins). */
  onEvent(event) {
    const id = event.job_id;
    if (!id) return;
    clearTimeout(this.pending.get(id));
    this.pending.set(id, setTimeout(async () => {
      this.pending.delete(id);
      try {
        this.upsert(await jobAtEvent(this.api, event));
      } catch { /* deleted or gone: keep the last row */ }
    }, 100));
  }
}
