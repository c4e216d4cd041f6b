// The page's entry point: read the public configuration, sign in when the api needs it,
// then route by the URL's hash (#/, #/jobs, #/jobs/<id>, #/usage) to one view at a time.
// One per-user event stream feeds every view that shows jobs.

import { Api } from "./api.js";
import { Auth } from "./auth.js";
import { byId, notify } from "./dom.js";
import { EventStream } from "./events.js";
import { JobView } from "./job_view.js";
import { JobsView } from "./jobs_view.js";
import { RunView } from "./run_view.js";
import { UsageView } from "./usage_view.js";

const VIEWS = ["signin", "run", "jobs", "job", "usage"];
const TITLES = { signin: "Sign in", run: "Upload and run", jobs: "Jobs", job: "Job", usage: "Usage" };

/** The view and its argument for a hash (pure). */
export function parseRoute(hash) {
  const path = (hash || "").replace(/^#/, "") || "/";
  const job = /^\/jobs\/([A-Za-z0-9-]+)$/.exec(path);
  if (job) return { view: "job", arg: job[1] };
  if (path === "/jobs") return { view: "jobs", arg: null };
  if (path === "/usage") return { view: "usage", arg: null };
  return { view: "run", arg: null };
}

class App {
  constructor(config) {
    this.config = config;
    this.auth = new Auth(config);
    this.api = new Api(this.auth);
    this.stream = null;
    this.current = null;
  }

  async start() {
    try {
      await this.auth.init();
    } catch (exc) {
      notify(exc.message);
    }
    this.api.onUnauthorized = () => {
      if (this.stream) this.stream.close();
      this.stream = null;
      this.auth.clear();
      notify("Your session has ended: sign in again.");
      this.route();
    };
    this.auth.onChange = () => this.showUser();
    byId("sign-in").addEventListener("click", () => this.auth.login());
    byId("sign-in-main").addEventListener("click", () => this.auth.login());
    byId("sign-out").addEventListener("click", () => this.auth.logout());
    this.run = new RunView(this.api, this);
    this.jobs = new JobsView(this.api, this.config.max_page_size || 1000);
    this.job = new JobView(this.api);
    this.usage = new UsageView(this.api);
    window.addEventListener("hashchange", () => this.route(true));
    this.showUser();
    byId("loading").hidden = true;
    await this.route(false);
  }

  showUser() {
    const signedIn = this.auth.enabled && this.auth.signedIn;
    byId("user-name").textContent = signedIn ? `Signed in as ${this.auth.userName}` : "";
    byId("sign-in").hidden = !this.auth.enabled || signedIn;
    byId("sign-out").hidden = !signedIn;
  }

  go(hash) {
    if (location.hash === hash) this.route(true);
    else location.hash = hash;
  }

  startStream() {
    if (this.stream) return;
    const live = byId("live-state");
    this.stream = new EventStream(
      this.api,
      "/api/v2/events",
      (event) => {
        this.jobs.onEvent(event);
        this.job.onEvent(event);
      },
      (status) => {
        live.textContent = status === "live" ? "Live: states update as they change." : "Reconnecting to live updates…";
        document.body.dataset.live = status;
      },
    ).start();
  }

  async route(focus) {
    const { view, arg } = this.auth.signedIn ? parseRoute(location.hash) : { view: "signin", arg: null };
    for (const name of VIEWS) byId(`view-${name}`).hidden = name !== view;
    for (const link of document.querySelectorAll("[data-nav]")) {
      const active = link.dataset.nav === (view === "job" ? "jobs" : view);
      if (active) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    document.title = `${TITLES[view]} · caesar-rest`;
    if (view !== "signin") this.startStream();
    try {
      if (view === "run") await this.run.show();
      else if (view === "jobs") await this.jobs.show();
      else if (view === "job") await this.job.show(arg);
      else if (view === "usage") await this.usage.show();
    } catch (exc) {
      notify(`Something went wrong: ${exc.message}`);
    }
    document.body.dataset.view = view;
    if (focus) byId("main").focus();
  }
}

async function main() {
  const response = await fetch("/web/config.json");
  const config = await response.json();
  await new App(config).start();
}

main().catch((exc) => notify(`The page could not start: ${exc.message}`));
