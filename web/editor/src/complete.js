// Completion of keys and enum values from Troupe's JSON Schema (spec.Schema).
// The cursor's place in the YAML is worked out from indentation alone — the
// parent keys up the indentation levels, "- " for list items — so it works
// while the document is half-typed and does not parse.

// A line: its leading spaces, the columns of its "- " markers, and its key
// (with the key's column and the value after the colon), if it has one.
const lineRE = /^( *)((?:-[ \t]+)*)(?:([A-Za-z_][\w.-]*|"[^"]*"|'[^']*')[ \t]*:(?:[ \t]+(.*)|$))?/;

function parseLine(text) {
  const m = lineRE.exec(text);
  const dashes = [];
  let col = m[1].length;
  for (const part of m[2].match(/-[ \t]+/g) || []) {
    dashes.push(col);
    col += part.length;
  }
  if (m[3] === undefined) return { dashes };
  const value = (m[4] || "").replace(/(^|\s)#.*$/, "").trim();
  return { dashes, key: m[3].replace(/^["']|["']$/g, ""), keyCol: col, value };
}

// pathAt answers the keys ("[]" for a list item) from the document's root to
// the mapping that column col of line lineNo belongs to; ownDashes are the
// list markers left of col on that line. null means the cursor is inside a
// block scalar (text, not keys).
function pathAt(doc, lineNo, col, ownDashes) {
  const segs = [];
  let c = col, dashed = false;
  const items = (dashes) => {
    for (const d of [...dashes].reverse()) {
      segs.unshift("[]");
      c = d;
      dashed = true;
    }
  };
  items(ownDashes);
  for (let n = lineNo - 1; n >= 1 && (c > 0 || dashed); n--) {
    const text = doc.line(n).text;
    if (/^(---|\.\.\.)(\s|$)/.test(text)) break;
    if (/^\s*(#|$)/.test(text)) continue;
    const l = parseLine(text);
    if (l.key === undefined) continue; // a scalar list item or wrapped text
    // A parent: less indented, or the key a compact list ("key:\n- a") hangs from.
    if (l.keyCol < c || (dashed && l.keyCol === c && l.value === "" && !l.dashes.length)) {
      if (/^[|>]/.test(l.value)) return null;
      segs.unshift(l.key);
      c = l.keyCol;
      dashed = false;
      items(l.dashes);
    } else if (l.keyCol === c && l.dashes.length && !dashed) {
      items(l.dashes); // the first key of the list item we are in
    }
  }
  return segs;
}

// siblingKeys answers the keys the mapping at column col of line lineNo
// already has, so completion does not offer them again: the keys at col
// above it up to where the mapping starts (its parent, or the "- " of its
// list item) and below it until something less indented ends it, within the
// same document. The cursor's own line is left out: its key is the one being
// typed. ownDashes are the list markers left of col on that line: a line
// that starts a list item starts a new mapping, so nothing above is in it.
function siblingKeys(doc, lineNo, col, ownDashes) {
  const keys = new Set();
  // The first column with text: the first "- " marker or the key.
  const start = (l, text) => (l.dashes.length ? l.dashes[0] : text.length - text.trimStart().length);
  const scan = (from, step, up) => {
    for (let n = from; n >= 1 && n <= doc.lines; n += step) {
      const text = doc.line(n).text;
      if (/^(---|\.\.\.)(\s|$)/.test(text)) return;
      if (/^\s*(#|$)/.test(text)) continue;
      const l = parseLine(text);
      if (l.key !== undefined && l.keyCol === col) {
        if (!l.dashes.length) {
          keys.add(l.key);
          continue;
        }
        // The first key of a list item: ours when looking up from inside
        // the item; below, the next item has begun.
        if (up) keys.add(l.key);
        return;
      }
      if (start(l, text) < col) return; // the mapping has ended (or begins below its parent)
    }
  };
  if (!ownDashes.length) scan(lineNo - 1, -1, true);
  scan(lineNo + 1, 1, false);
  return keys;
}

// The document around line lineNo: its kind, for the root's keys.
function kindAt(doc, lineNo) {
  let first = lineNo, last = lineNo;
  while (first > 1 && !/^---(\s|$)/.test(doc.line(first).text)) first--;
  while (last < doc.lines && !/^---(\s|$)/.test(doc.line(last + 1).text)) last++;
  for (let n = first; n <= last; n++) {
    const m = /^kind:\s*["']?([A-Za-z]+)/.exec(doc.line(n).text);
    if (m) return m[1];
  }
  return "";
}

function resolve(schema, node) {
  for (let i = 0; node && node.$ref && i < 16; i++) {
    node = schema.$defs[node.$ref.replace("#/$defs/", "")];
  }
  return node;
}
function variants(schema, node) {
  node = resolve(schema, node);
  if (!node) return [];
  const alts = node.anyOf || node.oneOf;
  return alts ? alts.flatMap((a) => variants(schema, a)) : [node];
}

function rootOf(schema, kind) {
  const kindProp = { ...schema.properties.kind, description: "The document's kind." };
  const def = schema.$defs[kind];
  if (!def) return { properties: { kind: kindProp } };
  return { ...def, properties: { kind: kindProp, ...def.properties } };
}

function child(schema, node, seg) {
  for (const v of variants(schema, node)) {
    if (seg === "[]") {
      if (v.items) return v.items;
    } else if (v.properties && v.properties[seg]) {
      return v.properties[seg];
    } else if (v.additionalProperties && typeof v.additionalProperties === "object") {
      return v.additionalProperties;
    }
  }
  return null;
}

function walk(schema, kind, segs) {
  let node = rootOf(schema, kind);
  for (const s of segs) {
    node = child(schema, node, s);
    if (!node) return null;
  }
  return node;
}

const describe = (schema, node) => (variants(schema, node).find((v) => v.description) || resolve(schema, node) || {}).description;

function keyOptions(schema, node) {
  const out = [];
  for (const v of variants(schema, node)) {
    for (const [key, prop] of Object.entries(v.properties || {})) {
      if (out.some((o) => o.label === key)) continue;
      const info = prop.description || describe(schema, prop);
      out.push({ label: key, type: "property", apply: key + ": ", ...(info ? { info } : {}) });
    }
  }
  return out;
}

function valueOptions(schema, node) {
  const out = [];
  const add = (v) => { if (!out.some((o) => o.label === String(v))) out.push({ label: String(v), type: "enum" }); };
  for (const v of variants(schema, node)) {
    for (const e of v.enum || []) add(e);
    if (v.const !== undefined) add(v.const);
    if (v.type === "boolean") { add(true); add(false); }
  }
  return out;
}

// schemaCompletion is a CodeMirror completion source over the schema that
// getSchema answers (null while it loads).
export function schemaCompletion(getSchema) {
  return (ctx) => {
    const schema = getSchema();
    if (!schema || !schema.$defs) return null;
    const doc = ctx.state.doc;
    const line = doc.lineAt(ctx.pos);
    const before = line.text.slice(0, ctx.pos - line.from);
    const kind = kindAt(doc, line.number);

    // A value: "key: partial".
    let m = /^( *(?:-[ \t]+)*)([A-Za-z_][\w.-]*)[ \t]*:[ \t]+([\w.-]*)$/.exec(before);
    if (m) {
      const own = parseLine(m[1]).dashes;
      const path = pathAt(doc, line.number, m[1].length, own);
      const node = path && walk(schema, kind, [...path, m[2]]);
      const options = node ? valueOptions(schema, node) : [];
      if (!options.length) return null;
      return { from: ctx.pos - m[3].length, options, validFor: /^[\w.-]*$/ };
    }
    // A key (or, in a list of enum values, a value): "  - part".
    m = /^( *(?:-[ \t]+)*)([A-Za-z_][\w.-]*)?$/.exec(before);
    if (!m || (!m[2] && !ctx.explicit)) return null;
    const own = parseLine(m[1]).dashes;
    const path = pathAt(doc, line.number, m[1].length, own);
    const node = path && walk(schema, kind, path);
    if (!node) return null;
    const present = siblingKeys(doc, line.number, m[1].length, own);
    const keys = keyOptions(schema, node).filter((o) => !present.has(o.label));
    const options = [...keys, ...valueOptions(schema, node)];
    if (!options.length) return null;
    return { from: ctx.pos - (m[2] || "").length, options, validFor: /^[\w.-]*$/ };
  };
}
