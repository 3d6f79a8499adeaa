// Builds the console's editor bundle, web/static/editor/editor.js, and the
// licences of every package bundled into it, web/static/editor/LICENSES.txt.
// The output depends only on package-lock.json and src/: .ci/run rebuilds it
// with `npm ci` and fails if the committed bundle differs.
import { build } from "esbuild";
import { readFileSync, writeFileSync, mkdirSync, readdirSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "static", "editor");
mkdirSync(out, { recursive: true });

const result = await build({
  entryPoints: [join(here, "src", "editor.js")],
  bundle: true,
  minify: true,
  format: "iife",
  target: "es2020",
  legalComments: "none", // the licences are in LICENSES.txt, next to the bundle
  charset: "utf8",
  metafile: true,
  write: false,
  absWorkingDir: here,
});
writeFileSync(join(out, "editor.js"), result.outputFiles[0].contents);

// The packages whose code is in the bundle, from esbuild's own account
// (a package imported only for types or tree-shaken away adds no bytes).
const packages = new Set();
for (const output of Object.values(result.metafile.outputs)) {
  for (const [input, { bytesInOutput }] of Object.entries(output.inputs)) {
    const m = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(input);
    if (m && bytesInOutput > 0) packages.add(m[1]);
  }
}
let text = "Third-party code in editor.js, bundled from npm by web/editor (package-lock.json pins each version).\n";
for (const name of [...packages].sort()) {
  const dir = join(here, "node_modules", name);
  const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
  const licence = readdirSync(dir).find((f) => /^licen[cs]e/i.test(f));
  text += "\n" + "=".repeat(72) + "\n" + name + " " + pkg.version + " (" + pkg.license + ")\n" + "=".repeat(72) + "\n\n";
  text += licence ? readFileSync(join(dir, licence), "utf8").trim() + "\n" : "No licence file; package.json says " + pkg.license + ".\n";
}
writeFileSync(join(out, "LICENSES.txt"), text);
console.log("editor.js: " + result.outputFiles[0].contents.length + " bytes, " + packages.size + " packages");
