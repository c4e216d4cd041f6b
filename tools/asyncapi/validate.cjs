#!/usr/bin/env node
// Parses one AsyncAPI document with the official parser (@asyncapi/parser) and prints
// its diagnostics as one JSON object on stdout:
//   {"file": ..., "errors": N, "warnings": N, "diagnostics": [{severity, code, message, path}]}
// Exit status: 0 without errors, 1 with errors, 2 on a usage or I/O problem.
// scripts/asyncapi.sh runs it with NODE_PATH pointing at the cached `npm ci` of this
// directory's package-lock.json, so the repository holds no node_modules.
"use strict";

const fs = require("node:fs");
const { Parser } = require("@asyncapi/parser");

// Spectral's severities (DiagnosticSeverity): 0 error, 1 warning, 2 information, 3 hint.
const SEVERITY = ["error", "warning", "information", "hint"];

async function main(argv) {
  if (argv.length !== 1) {
    process.stderr.write("usage: validate.cjs FILE\n");
    return 2;
  }
  const file = argv[0];
  let text;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (err) {
    process.stderr.write(`cannot read ${file}: ${err.message}\n`);
    return 2;
  }
  const parser = new Parser();
  const { document, diagnostics } = await parser.parse(text, { source: file });
  const items = diagnostics.map((d) => ({
    severity: SEVERITY[d.severity] ?? String(d.severity),
    code: String(d.code),
    message: d.message,
    path: d.path,
  }));
  const errors = items.filter((d) => d.severity === "error").length;
  const report = {
    file,
    parsed: document !== undefined,
    errors,
    warnings: items.filter((d) => d.severity === "warning").length,
    diagnostics: items,
  };
  process.stdout.write(JSON.stringify(report) + "\n");
  return errors === 0 && document !== undefined ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`${err && err.stack ? err.stack : err}\n`);
    process.exit(2);
  },
);
