// The harmonised catalogue (GET /api/v2/jobs/{id}/catalog?format=json) as a sortable
// table: one column per catalogue column with its unit; a heading button sorts by it,
// and the heading carries aria-sort so screen readers announce the order.

import { el, formatNumber } from "./dom.js";

const MAX_ROWS = 2000;

/** Rows sorted by ``column`` (nulls last), ``ascending`` or not (pure; a new array). */
export function sortRows(rows, column, ascending) {
  const sign = ascending ? 1 : -1;
  return rows.slice().sort((a, b) => {
    const x = a.row[column];
    const y = b.row[column];
    if (x === null || x === undefined) return y === null || y === undefined ? 0 : 1;
    if (y === null || y === undefined) return -1;
    if (typeof x === "number" && typeof y === "number") return sign * (x - y);
    return sign * String(x).localeCompare(String(y));
  });
}

export class CatalogTable {
  /** ``onHover(index|null)``: a row gained or lost pointer or keyboard focus. */
  constructor(table, catalog, onHover) {
    this.table = table;
    this.columns = catalog.columns || [];
    this.rows = (catalog.sources || []).map((row, index) => ({ row, index }));
    this.onHover = onHover;
    this.sortColumn = null;
    this.ascending = true;
    this.renderHead();
    this.renderBody();
  }

  renderHead() {
    const cells = this.columns.map((column) => {
      const label = column.unit ? `${column.name} (${column.unit})` : column.name;
      const button = el("button", { type: "button", text: label, title: column.description || "", onclick: () => this.sort(column.name) });
      return el("th", { scope: "col", dataset: { column: column.name } }, button);
    });
    this.table.tHead.replaceChildren(el("tr", {}, ...cells));
  }

  sort(name) {
    this.ascending = this.sortColumn === name ? !this.ascending : true;
    this.sortColumn = name;
    this.rows = sortRows(this.rows, name, this.ascending);
    for (const th of this.table.tHead.querySelectorAll("th")) {
      if (th.dataset.column === name) th.setAttribute("aria-sort", this.ascending ? "ascending" : "descending");
      else th.removeAttribute("aria-sort");
    }
    this.renderBody();
  }

  renderBody() {
    const fragment = document.createDocumentFragment();
    for (const { row, index } of this.rows.slice(0, MAX_ROWS)) {
      const tr = el("tr", { tabindex: "0", dataset: { index: String(index) } });
      for (const column of this.columns) {
        const value = row[column.name];
        tr.append(el("td", { class: typeof value === "number" ? "num" : undefined, text: formatNumber(value, 6) }));
      }
      tr.addEventListener("mouseenter", () => this.onHover(index));
      tr.addEventListener("focus", () => this.onHover(index));
      tr.addEventListener("mouseleave", () => this.onHover(null));
      tr.addEventListener("blur", () => this.onHover(null));
      fragment.append(tr);
    }
    this.table.tBodies[0].replaceChildren(fragment);
  }

  get shown() {
    return Math.min(this.rows.length, MAX_ROWS);
  }
}
