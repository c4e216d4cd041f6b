// The caller's usage: GET /api/v2/accounting/usage?group_by=app (totals and one row per app).

import { ApiError } from "./api.js";
import { byId, el, fillFacts, formatBytes, formatDuration } from "./dom.js";

export class UsageView {
  constructor(api) {
    this.api = api;
  }

  async show() {
    const error = byId("usage-error");
    error.hidden = true;
    let report;
    try {
      report = await this.api.json("/api/v2/accounting/usage?group_by=app");
    } catch (exc) {
      const busy = exc instanceof ApiError && exc.status === 503;
      error.textContent = busy ? "Usage figures are not available right now; try again in a minute." : `Could not read usage: ${exc.message}`;
      error.hidden = false;
      return;
    }
    const t = report.totals;
    fillFacts(byId("usage-totals"), [
      ["Jobs", String(t.njobs)],
      ["Completed", String(t.njobs_completed)],
      ["Failed", String(t.njobs_failed)],
      ["Canceled", String(t.njobs_canceled)],
      ["Timed out", String(t.njobs_timed_out)],
      ["Active", String(t.njobs_active)],
      ["Wall time", formatDuration(t.wall_s) || "0 s"],
      ["CPU time", formatDuration(t.cpu_s) || "0 s"],
      ["Outputs", formatBytes(t.output_bytes)],
      ["Uploads", `${t.nfiles} (${formatBytes(t.bytes_stored)})`],
    ]);
    const rows = report.rows.map((r) => el("tr", {},
      el("td", { text: r.app || "(uploads)" }),
      el("td", { class: "num", text: String(r.njobs) }),
      el("td", { class: "num", text: String(r.njobs_completed) }),
      el("td", { class: "num", text: String(r.njobs_failed) }),
      el("td", { class: "num", text: formatDuration(r.wall_s) || "0 s" }),
      el("td", { class: "num", text: formatDuration(r.cpu_s) || "0 s" }),
      el("td", { class: "num", text: formatBytes(r.output_bytes) }),
    ));
    byId("usage-table").tBodies[0].replaceChildren(...rows);
  }
}
