// A form generated from an app's options JSON Schema (GET /api/v2/apps), checked in the
// browser before sending: types, minimum/maximum, enums; the server's 422 ``errors``
// (JSON pointers ``/options/<name>``) are shown next to the same fields.

import { el } from "./dom.js";

function typeOf(schema) {
  const t = schema.type;
  if (Array.isArray(t)) return t.find((x) => x !== "null") || "string";
  if (t) return t;
  if (Array.isArray(schema.enum)) return typeof schema.enum[0] === "number" ? "number" : "string";
  return "string";
}

/** The fields of an options schema, in the schema's order (pure). */
export function fieldsOf(schema) {
  const props = (schema && schema.properties) || {};
  const required = new Set((schema && schema.required) || []);
  return Object.entries(props).map(([name, p]) => ({
    name,
    type: typeOf(p),
    title: p.title || name,
    description: p.description || "",
    default: p.default,
    minimum: p.minimum,
    maximum: p.maximum,
    exclusiveMinimum: p.exclusiveMinimum,
    exclusiveMaximum: p.exclusiveMaximum,
    minLength: p.minLength,
    maxLength: p.maxLength,
    pattern: p.pattern,
    enum: Array.isArray(p.enum) ? p.enum : null,
    category: p["x-category"] || "",
    advanced: Boolean(p["x-advanced"]),
    required: required.has(name),
  }));
}

/**
 * Check one raw form value against its field (pure). Returns ``[value, error]``: the
 * typed value (``undefined`` when empty) and a message, or ``null`` when it is fine.
 */
export function checkValue(field, raw) {
  if (field.type === "boolean") return [Boolean(raw), null];
  const text = typeof raw === "string" ? raw.trim() : raw;
  if (text === "" || text === undefined || text === null) {
    return [undefined, field.required ? "Required." : null];
  }
  if (field.enum) {
    const match = field.enum.find((option) => String(option) === String(text));
    return match === undefined ? [undefined, `Choose one of: ${field.enum.join(", ")}.`] : [match, null];
  }
  if (field.type === "integer" || field.type === "number") {
    const value = Number(text);
    if (!Number.isFinite(value)) return [undefined, "Enter a number."];
    if (field.type === "integer" && !Number.isInteger(value)) return [undefined, "Enter a whole number."];
    if (field.minimum !== undefined && value < field.minimum) return [undefined, `Must be at least ${field.minimum}.`];
    if (field.maximum !== undefined && value > field.maximum) return [undefined, `Must be at most ${field.maximum}.`];
    if (field.exclusiveMinimum !== undefined && value <= field.exclusiveMinimum) return [undefined, `Must be more than ${field.exclusiveMinimum}.`];
    if (field.exclusiveMaximum !== undefined && value >= field.exclusiveMaximum) return [undefined, `Must be less than ${field.exclusiveMaximum}.`];
    return [value, null];
  }
  const value = String(text);
  if (field.minLength !== undefined && value.length < field.minLength) return [undefined, `At least ${field.minLength} characters.`];
  if (field.maxLength !== undefined && value.length > field.maxLength) return [undefined, `At most ${field.maxLength} characters.`];
  if (field.pattern && !new RegExp(field.pattern, "u").test(value)) return [undefined, "Not in the expected form."];
  return [value, null];
}

/**
 * Every field's value checked (pure): ``{options, errors}``; options hold only the values
 * that differ from the app's defaults (the server fills in the rest).
 */
export function validateOptions(fields, raws) {
  const options = {};
  const errors = {};
  for (const field of fields) {
    const [value, error] = checkValue(field, raws[field.name]);
    if (error) errors[field.name] = error;
    else if (value !== undefined && value !== field.default) options[field.name] = value;
  }
  return { options, errors };
}

function rangeText(field) {
  const parts = [];
  if (field.minimum !== undefined && field.maximum !== undefined) parts.push(`${field.minimum} to ${field.maximum}`);
  else if (field.minimum !== undefined) parts.push(`at least ${field.minimum}`);
  else if (field.maximum !== undefined) parts.push(`at most ${field.maximum}`);
  const saysDefault = /default\s*[=:]/i.test(field.description);
  if (field.default !== undefined && field.type !== "boolean" && !saysDefault) parts.push(`default ${field.default}`);
  return parts.length ? ` (${parts.join("; ")})` : "";
}

function control(field, id, describedBy) {
  const common = { id, name: field.name, "aria-describedby": describedBy };
  if (field.type === "boolean") {
    return el("input", { ...common, type: "checkbox", checked: field.default === true });
  }
  if (field.enum) {
    const select = el("select", common);
    for (const option of field.enum) {
      select.append(el("option", { value: String(option), selected: option === field.default, text: String(option) }));
    }
    return select;
  }
  if (field.type === "integer" || field.type === "number") {
    return el("input", {
      ...common,
      type: "number",
      inputmode: field.type === "integer" ? "numeric" : "decimal",
      step: field.type === "integer" ? "1" : "any",
      min: field.minimum,
      max: field.maximum,
      value: field.default !== undefined ? String(field.default) : "",
      required: field.required,
    });
  }
  return el("input", { ...common, type: "text", value: field.default !== undefined ? String(field.default) : "", required: field.required });
}

export class OptionsForm {
  /** Render ``schema``'s fields into ``container`` (grouped by ``x-category``). */
  constructor(container, schema) {
    this.container = container;
    this.fields = fieldsOf(schema);
    this.inputs = new Map();
    this.errorNodes = new Map();
    this.render();
  }

  render() {
    const groups = new Map();
    for (const field of this.fields) {
      const key = field.advanced ? "Advanced" : field.category || "Options";
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push(field);
    }
    const nodes = [];
    for (const [name, fields] of groups) {
      const set = el("fieldset", {}, el("legend", { text: name.replace(/[-_]/g, " ").toLowerCase().replace(/^./, (c) => c.toUpperCase()) }));
      for (const field of fields) set.append(this.fieldNode(field));
      nodes.push(name === "Advanced" ? el("details", {}, el("summary", { text: "Advanced options" }), set) : set);
    }
    if (!nodes.length) nodes.push(el("p", { class: "help", text: "This app has no options." }));
    this.container.replaceChildren(...nodes);
  }

  fieldNode(field) {
    const id = `opt-${field.name}`;
    const help = el("p", { class: "help", id: `${id}-help`, text: `${field.description}${rangeText(field)}` });
    const error = el("p", { class: "field-error", id: `${id}-error`, hidden: true });
    const input = control(field, id, `${id}-help ${id}-error`);
    this.inputs.set(field.name, input);
    this.errorNodes.set(field.name, error);
    // Checked as the user types ("input"), not on "change": a change fires on blur, i.e.
    // on the mousedown of the Run button, and the message it shows would move the button
    // away from under the pointer before the click lands.
    input.addEventListener("input", () => this.checkOne(field));
    if (field.type === "boolean") {
      return el("div", { class: "field" }, el("label", { class: "check", for: id }, input, field.title), help, error);
    }
    return el("div", { class: "field" }, el("label", { for: id, text: field.title }), input, help, error);
  }

  raw(field) {
    const input = this.inputs.get(field.name);
    return field.type === "boolean" ? input.checked : input.value;
  }

  checkOne(field) {
    const [, error] = checkValue(field, this.raw(field));
    this.setError(field.name, error);
  }

  setError(name, message) {
    const input = this.inputs.get(name);
    const node = this.errorNodes.get(name);
    if (!input || !node) return false;
    node.textContent = message || "";
    node.hidden = !message;
    if (message) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
    return true;
  }

  clearErrors() {
    for (const name of this.inputs.keys()) this.setError(name, null);
  }

  /** ``{options, errors}``; shows the errors and focuses the first bad field. */
  collect() {
    const raws = {};
    for (const field of this.fields) raws[field.name] = this.raw(field);
    const result = validateOptions(this.fields, raws);
    this.clearErrors();
    for (const [name, message] of Object.entries(result.errors)) this.setError(name, message);
    this.focusFirstError();
    return result;
  }

  focusFirstError() {
    for (const [name, input] of this.inputs) {
      if (input.getAttribute("aria-invalid") === "true") {
        const details = input.closest("details");
        if (details) details.open = true;
        input.focus();
        return name;
      }
    }
    return null;
  }

  /** Show the server's 422 errors at their fields; returns those that fit no field. */
  showServerErrors(errors) {
    const rest = [];
    for (const error of errors) {
      const match = /^\/options\/(.+)$/.exec(error.path || "");
      const name = match ? match[1].replace(/~1/g, "/").replace(/~0/g, "~") : null;
      if (name && this.setError(name, error.message)) continue;
      // A rule between options (path "/options") names them as "name=value": mark each.
      const named = error.path === "/options" ? this.fields.filter((f) => error.message.includes(`${f.name}=`)) : [];
      for (const field of named) this.setError(field.name, error.message);
      rest.push(error);
    }
    this.focusFirstError();
    return rest;
  }
}
