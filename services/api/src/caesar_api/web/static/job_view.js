// One job: its facts (live), cancel; once it has ended, the preview with the sources drawn
// over it, the downloads, the sortable catalogue, the logs and the manifest.

import { ApiError } from "./api.js";
import { CatalogTable } from "./catalog_table.js";
import { byId, el, fillFacts, formatBytes, formatDuration, formatTime, shortId } from "./dom.js";
import { FINAL, elapsedOf, jobAtEvent, stateBadge, waitText } from "./jobs_view.js";
import { drawSources, highlight, previewGeometry } from "./overlay.js";

const FORMATS = [
  ["votable", "VOTable", "vot"],
  ["fits", "FITS table", "fits"],
  ["csv", "CSV", "csv"],
  ["json", "JSON", "json"],
  ["ds9", "DS9 regions", "reg"],
];
const LOG_MAX_CHARS = 200_000;

/** The manifest's log files (pure): names ending in .log or .txt, or under logs/. */
export function logFiles(files) {
  return files.map((f) => f.name).filter((name) => /\.(log|txt|out|err)$/i.test(name) || /(^|\/)logs?\//i.test(name));
}

/** The manifest entry of the preview's geometry, if the runner wrote one (pure). */
export function previewMetaName(files) {
  const names = files.map((f) => f.name);
  return names.find((n) => /(^|\/)preview\.json$/.test(n)) || names.find((n) => /preview.*\.json$/.test(n)) || null;
}

export class JobView {
  constructor(api) {
    this.api = api;
    this.jobId = null;
    this.job = null;
    this.resultsFor = null;
    this.objectUrl = null;
    byId("job-cancel").addEventListener("click", () => this.cancel());
    byId("log-select").addEventListener("change", (event) => this.showLog(event.target.value));
  }

  async show(jobId) {
    if (jobId !== this.jobId) this.reset(jobId);
    try {
      this.render(await this.api.json(`/api/v2/jobs/${encodeURIComponent(jobId)}`));
    } catch (exc) {
      if (exc instanceof ApiError && (exc.status === 404 || exc.status === 400)) {
        byId("job-title").textContent = "Job not found";
        byId("job-missing").hidden = false;
        return;
      }
      throw exc;
    }
  }

  reset(jobId) {
    this.jobId = jobId;
    this.job = null;
    this.resultsFor = null;
    byId("job-missing").hidden = true;
    byId("job-results").hidden = true;
    byId("job-facts").replaceChildren();
    byId("job-cancel").hidden = true;
    byId("preview-overlay").replaceChildren();
    if (this.objectUrl) URL.revokeObjectURL(this.objectUrl);
    this.objectUrl = null;
    byId("preview-img").removeAttribute("src");
  }

  render(job) {
    this.job = job;
    byId("job-title").textContent = `Job ${shortId(job.job_id)} — ${job.app}`;
    fillFacts(byId("job-facts"), [
      ["State", stateBadge(job.state)],
      ["Job id", job.job_id],
      ["App", job.app],
      ["Pool", job.pool],
      ["Queue / hold", waitText(job) || null],
      ["Attempt", job.attempt ? String(job.attempt) : null],
      ["Submitted", formatTime(job.submitted_at)],
      ["Started", formatTime(job.started_at)],
      ["Ended", formatTime(job.ended_at)],
      ["Elapsed", formatDuration(elapsedOf(job))],
      ["Exit code", job.exit_code === null || job.exit_code === undefined ? null : String(job.exit_code)],
      ["Reason", job.reason],
      ["Tag", job.tag],
      ["Options", Object.keys(job.options || {}).length ? JSON.stringify(job.options) : "defaults"],
    ]);
    byId("job-cancel").hidden = FINAL.has(job.state);
    if (FINAL.has(job.state) && job.state !== "DELETED" && this.resultsFor !== job.job_id) {
      this.resultsFor = job.job_id;
      this.loadResults(job).catch(() => {});
    }
  }

  async cancel() {
    const button = byId("job-cancel");
    button.disabled = true;
    try {
      this.render(await this.api.post(`/api/v2/jobs/${this.jobId}/cancel`));
    } catch (exc) {
      if (!(exc instanceof ApiError && exc.status === 409)) throw exc;
    } finally {
      button.disabled = false;
    }
  }

  /** A state event of one of the caller's jobs: refresh if it is this one. */
  onEvent(event) {
    if (event.job_id !== this.jobId || byId("view-job").hidden) return;
    this.latest = event;
    jobAtEvent(this.api, event)
      .then((job) => { if (this.latest === event && job.job_id === this.jobId) this.render(job); })
      .catch(() => {});
  }

  async loadResults(job) {
    const base = `/api/v2/jobs/${job.job_id}`;
    let manifest;
    try {
      manifest = await this.api.json(`${base}/files`);
    } catch (exc) {
      if (exc instanceof ApiError && exc.status === 404) return; // ended without outputs
      throw exc;
    }
    byId("job-results").hidden = false;
    this.renderDownloads(job);
    this.renderManifest(base, manifest.files);
    this.renderLogs(manifest.files);
    const [catalog, meta] = await Promise.all([
      this.api.json(`${base}/catalog?format=json`).catch(() => null),
      this.loadPreview(base, manifest.files),
    ]);
    const svg = byId("preview-overlay");
    const note = byId("preview-note");
    if (catalog) {
      const drawn = drawSources(svg, previewGeometry(meta), catalog.sources || []);
      const table = new CatalogTable(byId("catalog-table"), catalog, (index) => highlight(svg, index));
      const total = (catalog.sources || []).length;
      byId("catalog-summary").textContent =
        `${total} ${catalog.catalog || "sources"} found by ${catalog.finder || job.app}` +
        (table.shown < total ? ` (the first ${table.shown} shown; download the catalogue for all)` : "") +
        ". Choose a heading to sort; point at or focus a row to mark its source on the preview.";
      note.textContent = drawn ? `${drawn} sources outlined at their fitted size (FWHM).` : "";
    } else {
      byId("catalog-summary").textContent = "This job has no catalogue.";
    }
  }

  /** The preview as a blob (the request needs the token) and its geometry, if any. */
  async loadPreview(base, files) {
    const img = byId("preview-img");
    try {
      const blob = await this.api.blob(`${base}/preview.png`);
      if (this.objectUrl) URL.revokeObjectURL(this.objectUrl);
      this.objectUrl = URL.createObjectURL(blob);
      img.src = this.objectUrl;
      img.hidden = false;
    } catch {
      img.hidden = true;
      return null;
    }
    const name = previewMetaName(files);
    if (!name) return null;
    return this.api.json(`${base}/files/${name.split("/").map(encodeURIComponent).join("/")}`).catch(() => null);
  }

  downloadLink(path, filename, text) {
    return el("a", {
      href: path,
      class: "button",
      download: filename,
      text,
      onclick: (event) => {
        if (!this.api.auth.enabled) return; // a plain link works without a token
        event.preventDefault();
        this.api.download(path, filename).catch((exc) => alert(`Download failed: ${exc.message}`));
      },
    });
  }

  renderDownloads(job) {
    const base = `/api/v2/jobs/${job.job_id}`;
    const items = FORMATS.map(([format, label, ext]) =>
      el("li", {}, this.downloadLink(`${base}/catalog?format=${format}`, `${job.job_id}-sources.${ext}`, `Catalogue: ${label}`)),
    );
    items.push(el("li", {}, this.downloadLink(`${base}/preview.png`, `${job.job_id}-preview.png`, "Preview PNG")));
    items.push(el("li", {}, this.downloadLink(`${base}/archive`, `${job.job_id}.tar.gz`, "Everything (.tar.gz)")));
    byId("downloads").replaceChildren(...items);
  }

  renderManifest(base, files) {
    const rows = files.map((file) => {
      const path = `${base}/files/${file.name.split("/").map(encodeURIComponent).join("/")}`;
      return el("tr", {},
        el("td", {}, this.downloadLink(path, file.name.split("/").pop(), file.name)),
        el("td", { class: "num", text: formatBytes(file.size_bytes) }),
        el("td", { text: file.sha256 ? file.sha256.slice(0, 16) + "…" : "", title: file.sha256 || "" }),
      );
    });
    byId("manifest-table").tBodies[0].replaceChildren(...rows);
    for (const link of byId("manifest-table").querySelectorAll("a.button")) link.classList.remove("button");
  }

  renderLogs(files) {
    const names = logFiles(files);
    const select = byId("log-select");
    select.replaceChildren(...names.map((name) => el("option", { value: name, text: name })));
    if (names.length) this.showLog(names[0]);
    else byId("log-text").textContent = "This job left no log file.";
  }

  async showLog(name) {
    const pre = byId("log-text");
    pre.textContent = "Loading…";
    try {
      const raw = await this.api.text(`/api/v2/jobs/${this.jobId}/files/${name.split("/").map(encodeURIComponent).join("/")}`);
      // Colour codes of terminal logs (ESC [ ... m) mean nothing on a page.
      const text = raw.replace(/\u001b\[[0-9;]*[A-Za-z]/g, "");
      pre.textContent = text.length > LOG_MAX_CHARS ? `… (the last ${LOG_MAX_CHARS} characters)\n${text.slice(-LOG_MAX_CHARS)}` : text;
    } catch (exc) {
      pre.textContent = `Could not read the log: ${exc.message}`;
    }
  }
}
