// The api, called with the user's token: JSON requests, uploads with progress, downloads
// of files the browser cannot fetch by a plain link (a link carries no Authorization).

export class ApiError extends Error {
  /** ``problem``: the RFC 9457 body (v2) or ``{"status": message}`` (v1), when JSON. */
  constructor(status, problem) {
    const text = problem && (problem.detail || problem.title || problem.status);
    super(typeof text === "string" && text ? text : `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
  }

  /** The 422 list of ``{path, message}`` (empty for other errors). */
  get fieldErrors() {
    return Array.isArray(this.problem.errors) ? this.problem.errors : [];
  }
}

async function problemOf(response) {
  try {
    return await response.json();
  } catch {
    return null;
  }
}

export class Api {
  constructor(auth) {
    this.auth = auth;
    this.onUnauthorized = () => {};
  }

  async headers(extra = {}) {
    const headers = { ...extra };
    const value = await this.auth.header();
    if (value) headers.Authorization = value;
    return headers;
  }

  /** ``fetch`` with the token; a 401 refreshes once and retries, then signs out. */
  async fetch(path, init = {}, retried = false) {
    const response = await fetch(path, { ...init, headers: await this.headers(init.headers || {}) });
    if (response.status === 401 && this.auth.enabled) {
      if (!retried) {
        try {
          await this.auth.refresh();
          return this.fetch(path, init, true);
        } catch { /* fall through: sign in again */ }
      }
      this.onUnauthorized();
    }
    return response;
  }

  /** JSON of a successful answer; an :class:`ApiError` otherwise. */
  async json(path, init = {}) {
    const response = await this.fetch(path, init);
    if (!response.ok) throw new ApiError(response.status, await problemOf(response));
    return response.status === 204 ? null : response.json();
  }

  post(path, body) {
    return this.json(path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  }

  async text(path) {
    const response = await this.fetch(path);
    if (!response.ok) throw new ApiError(response.status, await problemOf(response));
    return response.text();
  }

  async blob(path) {
    const response = await this.fetch(path);
    if (!response.ok) throw new ApiError(response.status, await problemOf(response));
    return response.blob();
  }

  /**
   * ``POST /api/v2/files`` with XMLHttpRequest (fetch reports no upload progress).
   * Returns ``{promise, abort}``; ``onProgress(fraction)`` is called as bytes leave.
   */
  upload(file, onProgress) {
    const xhr = new XMLHttpRequest();
    const promise = (async () => {
      const auth = await this.auth.header();
      return new Promise((resolve, reject) => {
        xhr.open("POST", "/api/v2/files");
        if (auth) xhr.setRequestHeader("Authorization", auth);
        xhr.responseType = "json";
        xhr.upload.addEventListener("progress", (event) => {
          if (event.lengthComputable) onProgress(event.loaded / event.total);
        });
        xhr.addEventListener("load", () => {
          if (xhr.status === 201) resolve(xhr.response);
          else reject(new ApiError(xhr.status, xhr.response));
        });
        xhr.addEventListener("error", () => reject(new ApiError(0, { detail: "The upload failed: network error" })));
        xhr.addEventListener("abort", () => reject(new ApiError(0, { detail: "Upload canceled" })));
        const form = new FormData();
        form.append("file", file, file.name);
        xhr.send(form);
      });
    })();
    return { promise, abort: () => xhr.abort() };
  }

  /** Save the answer of ``path`` as ``filename`` (through a blob: the request needs the token). */
  async download(path, filename) {
    const blob = await this.blob(path);
    const url = URL.createObjectURL(blob);
    const link = document.createElement("a");
    link.href = url;
    link.download = filename;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  }
}
