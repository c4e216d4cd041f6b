// Small DOM and formatting helpers. Text always goes in as text (textContent), never as
// HTML, so nothing a user or a file name contains can become markup.

/** The element with this id (throws if the page lacks it: a bug, not a user error). */
export function byId(id) {
  const node = document.getElementById(id);
  if (!node) throw new Error(`missing element #${id}`);
  return node;
}

/**
 * A new element: attributes (``class``, ``text``, ``on<event>``, ``dataset``, others as
 * attributes) and children (nodes or strings).
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = String(value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Replace every child of ``node``. */
export function setChildren(node, ...children) {
  node.replaceChildren(...children.filter((c) => c !== undefined && c !== null));
}

/** Fill a ``<dl>`` with term/definition pairs (entries whose value is null are left out). */
export function fillFacts(dl, pairs) {
  const nodes = [];
  for (const [term, value] of pairs) {
    if (value === null || value === undefined || value === "") continue;
    nodes.push(el("dt", { text: term }), el("dd", {}, value));
  }
  dl.replaceChildren(...nodes);
}

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];

export function formatBytes(n) {
  if (n === null || n === undefined) return "";
  let value = Number(n);
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${UNITS[unit]}`;
}

export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** An ISO time as local ``YYYY-MM-DD HH:MM:SS`` (empty for none). */
export function formatTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const pad = (v) => String(v).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function formatNumber(value, digits = 4) {
  if (value === null || value === undefined) return "";
  if (typeof value !== "number") return String(value);
  if (Number.isInteger(value)) return String(value);
  const abs = Math.abs(value);
  if (abs !== 0 && (abs < 1e-3 || abs >= 1e6)) return value.toExponential(digits - 1);
  return value.toPrecision(digits).replace(/(\.\d*?)0+$/, "$1").replace(/\.$/, "");
}

/** The first 8 characters of a job id: enough to tell jobs apart in a list. */
export function shortId(id) {
  return String(id).slice(0, 8);
}

/** Show ``message`` in the page's alert banner (empty: hide it). */
export function notify(message) {
  const box = byId("notice");
  box.textContent = message || "";
  box.hidden = !message;
}
