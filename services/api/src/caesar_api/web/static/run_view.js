// "Upload and run": drop or choose a file (progress bar), see what the api read from its
// header, choose an app, fill its options (checked before sending), submit.

import { ApiError } from "./api.js";
import { byId, el, fillFacts, formatBytes, formatNumber, formatTime } from "./dom.js";
import { drawFitsThumbnail } from "./fits_thumb.js";
import { OptionsForm } from "./schema_form.js";

/** Header facts of a v2 ``file`` as ``[term, value]`` pairs (pure). */
export function fileFacts(file) {
  const fits = file.fits || {};
  const pairs = [
    ["Name", file.filename],
    ["Size", formatBytes(file.size_bytes)],
    ["Uploaded", formatTime(file.uploaded_at)],
  ];
  if (file.fits) {
    pairs.push(["Shape", Array.isArray(fits.shape) ? fits.shape.join(" × ") : null]);
    pairs.push(["Pixel type", fits.bitpix !== undefined ? `BITPIX ${fits.bitpix}` : null]);
    if (fits.beam) {
      const b = fits.beam;
      pairs.push(["Beam", `${formatNumber(b.bmaj_deg * 3600, 3)}″ × ${formatNumber(b.bmin_deg * 3600, 3)}″, PA ${formatNumber(b.bpa_deg, 3)}°`]);
    } else {
      pairs.push(["Beam", "not in the header"]);
    }
    pairs.push(["Frequency", fits.frequency_hz ? `${formatNumber(fits.frequency_hz / 1e6, 6)} MHz` : "not in the header"]);
    const sky = fits.celestial;
    pairs.push(["WCS", sky ? `${(sky.ctype || []).join(", ")}${sky.radesys ? ` (${sky.radesys})` : ""}` : "no celestial WCS"]);
    pairs.push(["Unit", fits.bunit]);
    if (Array.isArray(fits.warnings) && fits.warnings.length) pairs.push(["Warnings", fits.warnings.join("; ")]);
  }
  return pairs;
}

export class RunView {
  constructor(api, router) {
    this.api = api;
    this.router = router;
    this.apps = [];
    this.form = null;
    this.file = null;
    this.upload = null;
    this.loaded = false;
    this.wire();
  }

  wire() {
    const drop = byId("drop");
    const input = byId("file-input");
    drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", (event) => {
      event.preventDefault();
      drop.classList.remove("over");
      const file = event.dataTransfer && event.dataTransfer.files[0];
      if (file) this.send(file);
    });
    input.addEventListener("change", () => { if (input.files[0]) this.send(input.files[0]); input.value = ""; });
    byId("upload-abort").addEventListener("click", () => this.upload && this.upload.abort());
    byId("app-select").addEventListener("change", () => this.showApp());
    byId("file-select").addEventListener("change", (event) => this.chooseExisting(event.target.value));
    byId("job-form").addEventListener("submit", (event) => { event.preventDefault(); this.submit(); });
  }

  async show() {
    if (this.loaded) return;
    const [apps, files] = await Promise.all([this.api.json("/api/v2/apps"), this.api.json("/api/v2/files?limit=50")]);
    this.apps = apps.apps;
    const select = byId("app-select");
    select.replaceChildren(...this.apps.map((app) => el("option", {
      value: app.name,
      disabled: !app.available,
      text: app.available ? `${app.name} ${app.version}` : `${app.name} (${app.unavailable_reason || "unavailable"})`,
    })));
    const first = this.apps.find((app) => app.available);
    if (first) select.value = first.name;
    this.showApp();
    this.files = files.items;
    byId("file-select").replaceChildren(
      el("option", { value: "", text: "(choose)" }),
      ...files.items.map((f) => el("option", { value: f.file_id, text: `${f.filename} — ${formatTime(f.uploaded_at)}` })),
    );
    this.loaded = true;
  }

  showApp() {
    const app = this.apps.find((a) => a.name === byId("app-select").value);
    byId("app-description").textContent = app ? app.description : "";
    this.form = new OptionsForm(byId("options"), app ? app.schema : {});
    byId("form-errors").hidden = true;
  }

  async send(file) {
    const bar = byId("upload-bar");
    const label = byId("upload-label");
    const percent = byId("upload-percent");
    const error = byId("upload-error");
    error.hidden = true;
    byId("file-facts").hidden = true;
    byId("upload-progress").hidden = false;
    label.textContent = `Uploading ${file.name}`;
    byId("upload-abort").hidden = false;
    bar.value = 0;
    percent.textContent = "0%";
    this.thumbnail(file);
    this.upload = this.api.upload(file, (fraction) => {
      bar.value = Math.round(fraction * 100);
      percent.textContent = `${bar.value}%`;
    });
    try {
      const uploaded = await this.upload.promise;
      bar.value = 100;
      percent.textContent = "100%";
      label.textContent = `Uploaded ${file.name}`;
      byId("upload-abort").hidden = true;
      this.setFile(uploaded);
    } catch (exc) {
      byId("upload-progress").hidden = true;
      error.textContent = exc instanceof ApiError ? `Upload refused: ${exc.message}` : String(exc);
      error.hidden = false;
    } finally {
      this.upload = null;
    }
  }

  async thumbnail(file) {
    const figure = byId("thumb-figure");
    figure.hidden = true;
    const canvas = byId("thumb");
    canvas.width = canvas.height = 160;
    try {
      if (/\.(png|jpe?g|gif)$/i.test(file.name)) {
        const bitmap = await createImageBitmap(file);
        const scale = Math.min(160 / bitmap.width, 160 / bitmap.height, 1);
        canvas.width = Math.max(1, Math.round(bitmap.width * scale));
        canvas.height = Math.max(1, Math.round(bitmap.height * scale));
        canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
        figure.hidden = false;
      } else if (await drawFitsThumbnail(file, canvas)) {
        figure.hidden = false;
      }
    } catch {
      figure.hidden = true; // a thumbnail is a nicety: the upload goes on without one
    }
  }

  setFile(file) {
    this.file = file;
    fillFacts(byId("facts"), fileFacts(file));
    byId("file-facts").hidden = false;
  }

  async chooseExisting(fileId) {
    if (!fileId) return;
    byId("thumb-figure").hidden = true;
    byId("upload-progress").hidden = true;
    this.setFile(await this.api.json(`/api/v2/files/${encodeURIComponent(fileId)}`));
  }

  async submit() {
    const errors = byId("form-errors");
    errors.hidden = true;
    const { options, errors: bad } = this.form.collect();
    const messages = [];
    if (!this.file) messages.push("Upload an image first (or choose one uploaded before).");
    if (Object.keys(bad).length) messages.push("Some options are not valid: see the fields marked.");
    if (messages.length) {
      errors.textContent = messages.join(" ");
      errors.hidden = false;
      if (!this.file) byId("file-input").focus();
      return;
    }
    const button = byId("submit-job");
    button.disabled = true;
    try {
      const body = { app: byId("app-select").value, file_id: this.file.file_id, options };
      const tag = byId("job-tag").value.trim();
      if (tag) body.tag = tag;
      const job = await this.api.post("/api/v2/jobs", body);
      this.router.go(`#/jobs/${job.job_id}`);
    } catch (exc) {
      const rest = exc instanceof ApiError ? this.form.showServerErrors(exc.fieldErrors) : [];
      const detail = rest.map((e) => `${e.path || "request"}: ${e.message}`).join("; ");
      errors.textContent = `The job was refused: ${detail || exc.message}`;
      errors.hidden = false;
    } finally {
      button.disabled = false;
    }
  }
}
