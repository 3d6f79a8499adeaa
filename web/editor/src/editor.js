// Troupe's YAML editor page (/ui/editor): CodeMirror 6 over the console's
// editor routes (console/editor). Files stay the source of truth: every save
// is guarded by the hash the editor loaded, so a file changed on disk in the
// meantime is a conflict shown as a diff, never overwritten silently.
import { EditorState } from "@codemirror/state";
import {
  EditorView, keymap, lineNumbers, highlightActiveLine, highlightActiveLineGutter,
  highlightSpecialChars, drawSelection,
} from "@codemirror/view";
// (CodeMirror's history is the undo history; window.history is the page's.)
import { defaultKeymap, history as undoHistory, historyKeymap, indentWithTab } from "@codemirror/commands";
import { syntaxHighlighting, defaultHighlightStyle, indentOnInput, bracketMatching, indentUnit } from "@codemirror/language";
import { setDiagnostics, lintGutter, lintKeymap } from "@codemirror/lint";
import { autocompletion, completionKeymap } from "@codemirror/autocomplete";
import { searchKeymap, highlightSelectionMatches } from "@codemirror/search";
import { yaml } from "@codemirror/lang-yaml";
import { schemaCompletion } from "./complete.js";
import { lineDiff } from "./diff.js";

// How long typing must pause before the buffer is checked.
const checkDelay = 150;

const root = document.getElementById("editor-page");
if (root) init(root);

function init(root) {
  const $ = (id) => document.getElementById(id);
  const ui = {
    files: $("ed-files"), templates: $("ed-templates"), path: $("ed-path"), host: $("ed-host"),
    save: $("ed-save"), status: $("ed-status"), problems: $("ed-problems"), empty: $("ed-empty"),
    conflict: $("ed-conflict"), conflictMsg: $("ed-conflict-msg"), diff: $("ed-diff"),
    loadDisk: $("ed-load-disk"), keepMine: $("ed-keep-mine"),
    newForm: $("ed-new"), newKind: $("ed-new-kind"), newName: $("ed-new-name"),
    renameBtn: $("ed-rename"), renameForm: $("ed-rename-form"), renameTo: $("ed-rename-to"),
    deleteBtn: $("ed-delete"), deleteForm: $("ed-delete-form"), deleteNo: $("ed-delete-no"),
  };
  // The open file: its path, the hash it had when loaded (or last saved;
  // "" for a file not on disk yet) and the content that hash stands for.
  const file = { path: "", hash: "", saved: "", open: false };
  let conflict = null; // the last 409's body while the diff is shown
  let checkTimer = 0, checkSeq = 0;

  const encodePath = (p) => p.split("/").map(encodeURIComponent).join("/");
  const setStatus = (msg, kind) => {
    ui.status.textContent = msg;
    ui.status.className = "ed-status" + (kind ? " " + kind : "");
  };
  // call sends JSON to an editor route and answers {ok, status, body}; the
  // body of an error is {detail} from the API, or the console's text.
  async function call(method, url, body) {
    const init = { method, headers: { Accept: "application/json" } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(url, init);
    } catch (err) {
      return { ok: false, status: 0, body: { detail: "The server cannot be reached: " + err.message } };
    }
    const text = await res.text();
    let data;
    try { data = JSON.parse(text); } catch { data = { detail: text || res.statusText }; }
    return { ok: res.ok, status: res.status, body: data };
  }

  const dirty = () => file.open && view.state.doc.toString() !== file.saved;
  const showPath = () => {
    ui.path.textContent = file.path + (dirty() ? " •" : "");
    ui.save.disabled = !file.open;
    ui.renameBtn.disabled = ui.deleteBtn.disabled = !file.open || file.hash === "";
  };

  const view = new EditorView({
    parent: ui.host,
    state: EditorState.create({ doc: "", extensions: extensions() }),
  });
  function extensions() {
    return [
      lineNumbers(), highlightActiveLineGutter(), highlightSpecialChars(), undoHistory(), drawSelection(),
      indentOnInput(), indentUnit.of("  "), EditorState.tabSize.of(2), bracketMatching(),
      syntaxHighlighting(defaultHighlightStyle, { fallback: true }), highlightActiveLine(),
      highlightSelectionMatches(), yaml(), lintGutter(),
      autocompletion({ override: [schemaCompletion(() => schema)], icons: false }),
      keymap.of([
        { key: "Mod-s", run: () => { save(false); return true; }, preventDefault: true },
        ...completionKeymap, ...defaultKeymap, ...historyKeymap, ...searchKeymap, ...lintKeymap, indentWithTab,
      ]),
      EditorView.contentAttributes.of({ "aria-label": "YAML file", "data-testid": "editor-content" }),
      EditorView.updateListener.of((u) => {
        if (!u.docChanged) return;
        showPath();
        scheduleCheck();
      }),
    ];
  }

  // The JSON Schema drives completion; the page works without it.
  let schema = null;
  fetch(root.dataset.schema).then((r) => (r.ok ? r.json() : null)).then((s) => { schema = s; }, () => {});

  // Live diagnostics: the buffer is checked after a pause in typing; an
  // answer older than the latest request is dropped.
  function scheduleCheck() {
    clearTimeout(checkTimer);
    checkTimer = setTimeout(check, checkDelay);
  }
  async function check() {
    if (!file.open) return;
    const seq = ++checkSeq;
    const content = view.state.doc.toString();
    const r = await call("POST", "/ui/editor/check", { path: file.path, content });
    if (seq !== checkSeq) return; // a newer check is on its way
    if (!r.ok) {
      setStatus("Checking failed: " + r.body.detail, "error");
      return;
    }
    showDiagnostics(r.body.diagnostics || [], content);
  }

  function showDiagnostics(all, content) {
    if (view.state.doc.toString() !== content) return; // typed since: the next check covers it
    const doc = view.state.doc;
    const here = all.filter((d) => d.path === file.path);
    const marks = here.map((d) => {
      const line = doc.line(Math.min(Math.max(d.line || 1, 1), doc.lines));
      const from = Math.min(line.from + Math.max((d.column || 1) - 1, 0), line.to);
      let to = from;
      if (d.end_line && d.end_line <= doc.lines && (d.end_line > d.line || (d.end_column || 0) > (d.column || 0))) {
        const end = doc.line(Math.max(d.end_line, 1));
        to = Math.min(end.from + Math.max((d.end_column || 1) - 1, 0), end.to);
      }
      // The server ends every range at its token; one past the text has
      // none, and gets a character so it shows.
      if (to <= from && from < doc.length) to = from + 1;
      return { from, to, severity: d.severity === "warning" ? "warning" : "error", message: d.message, source: "troupe" };
    });
    view.dispatch(setDiagnostics(view.state, marks));
    ui.problems.replaceChildren(...all.map((d) => problemItem(d)));
    ui.problems.dataset.count = String(all.length);
    $("ed-problems-none").hidden = all.length > 0;
  }

  function problemItem(d) {
    const li = document.createElement("li");
    li.className = "diag " + (d.severity === "warning" ? "warning" : "error");
    li.dataset.testid = "editor-problem";
    const where = d.path + ":" + d.line + ":" + d.column;
    let link;
    if (d.path === file.path) {
      link = document.createElement("button");
      link.type = "button";
      link.className = "link";
      link.addEventListener("click", () => jump(d.line, d.column));
    } else {
      link = document.createElement("a");
      link.href = "/ui/editor?path=" + encodeURIComponent(d.path);
    }
    link.textContent = where;
    const code = document.createElement("code");
    code.append(link, ": " + d.message);
    li.append(code);
    return li;
  }

  function jump(line, column) {
    const doc = view.state.doc;
    const l = doc.line(Math.min(Math.max(line, 1), doc.lines));
    const pos = Math.min(l.from + Math.max(column - 1, 0), l.to);
    view.dispatch({ selection: { anchor: pos }, scrollIntoView: true });
    view.focus();
  }

  // Opening, creating, saving, renaming, deleting.
  function load(path, content, hash) {
    Object.assign(file, { path, hash, saved: hash === "" ? "" : content, open: true });
    view.setState(EditorState.create({ doc: content, extensions: extensions() }));
    ui.empty.hidden = true;
    ui.host.hidden = false;
    hideConflict();
    hideForms();
    showPath();
    markCurrent();
    check();
  }

  async function open(path, push) {
    if (dirty() && path !== file.path && !confirm("Discard your unsaved changes to " + file.path + "?")) return;
    const r = await call("GET", "/ui/editor/files/" + encodePath(path));
    if (!r.ok) {
      setStatus("Cannot open " + path + ": " + r.body.detail, "error");
      return;
    }
    load(r.body.path, r.body.content, r.body.hash);
    setStatus("Opened " + r.body.path + ".");
    if (push) window.history.pushState(null, "", "/ui/editor?path=" + encodeURIComponent(r.body.path));
  }

  async function startNew(kind, name) {
    const r = await call("GET", "/ui/editor/templates/" + encodeURIComponent(kind) + "?name=" + encodeURIComponent(name));
    if (!r.ok) {
      setStatus("Cannot start a new " + kind + ": " + r.body.detail, "error");
      return;
    }
    load(r.body.path, r.body.content, "");
    setStatus("New file " + r.body.path + ": not saved yet; Save creates it.");
    view.focus();
  }

  async function save(keepMine) {
    if (!file.open) return;
    const content = view.state.doc.toString();
    const base = keepMine ? (conflict.exists ? conflict.current_hash : "") : file.hash;
    setStatus("Saving " + file.path + "…");
    const r = await call("PUT", "/ui/editor/files/" + encodePath(file.path), { content, base_hash: base });
    if (r.status === 409) {
      showConflict(r.body, content);
      setStatus("Not saved: " + file.path + " changed on disk since you opened it.", "error");
      return;
    }
    if (!r.ok) {
      setStatus("Not saved: " + r.body.detail, "error");
      return;
    }
    const created = file.hash === "";
    Object.assign(file, { path: r.body.path, hash: r.body.hash, saved: content });
    hideConflict();
    showPath();
    showReload((created ? "Created " : "Saved ") + file.path + ".", r.body.reload);
    window.history.replaceState(null, "", "/ui/editor?path=" + encodeURIComponent(file.path));
    listFiles();
  }

  // showReload reports the reload that followed a write: its generation,
  // and the errors that keep objects of the folder from being served (the
  // last good version of each keeps serving).
  function showReload(done, reload) {
    if (!reload) {
      setStatus(done);
      return;
    }
    const gen = reload.generation;
    ui.status.dataset.generation = String(gen);
    if (!reload.success) {
      setStatus(done + " The reload failed: " + (reload.error || "see the server log") + ".", "error");
      return;
    }
    const errors = (reload.diagnostics || []).filter((d) => d.severity !== "warning")
      .map((d) => d.path + ":" + d.line + ":" + d.column + ": " + d.message);
    const what = " Reloaded: generation " + gen + (reload.changed === false ? " (nothing to change)" : "") + ".";
    if (errors.length) {
      setStatus(done + what + " " + errors.length + (errors.length === 1 ? " error keeps" : " errors keep") +
        " objects from being served (the last good version of each serves): " + errors.slice(0, 3).join("; ") + (errors.length > 3 ? "; …" : ""), "error");
    } else {
      setStatus(done + what, "ok");
    }
  }

  function showConflict(body, mine) {
    conflict = body;
    ui.conflictMsg.textContent = body.exists
      ? (body.detail || "The file changed on disk.") + " Lines marked − are on disk, + are yours."
      : (body.detail || "The file was deleted on disk.") + " Keep mine writes it again.";
    ui.diff.replaceChildren(...lineDiff(body.exists ? body.current_content : "", mine).map(([op, text]) => {
      const s = document.createElement("span");
      s.className = op === "+" ? "add" : op === "-" ? "del" : "same";
      s.textContent = (op === "+" ? "+ " : op === "-" ? "− " : "  ") + text + "\n";
      return s;
    }));
    ui.loadDisk.disabled = !body.exists;
    ui.conflict.hidden = false;
  }
  function hideConflict() {
    conflict = null;
    ui.conflict.hidden = true;
  }
  ui.loadDisk.addEventListener("click", () => {
    if (!conflict) return;
    load(file.path, conflict.current_content, conflict.current_hash);
    setStatus("Loaded the version on disk; your changes were discarded.");
  });
  ui.keepMine.addEventListener("click", () => { if (conflict) save(true); });
  ui.save.addEventListener("click", () => save(false));

  const hideForms = () => { ui.renameForm.hidden = ui.deleteForm.hidden = true; };
  ui.renameBtn.addEventListener("click", () => {
    hideForms();
    ui.renameForm.hidden = false;
    ui.renameTo.value = file.path;
    ui.renameTo.focus();
  });
  ui.renameForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    const to = ui.renameTo.value.trim();
    if (!to || to === file.path) return hideForms();
    const r = await call("POST", "/ui/editor/rename", { from: file.path, to, base_hash: file.hash });
    if (!r.ok) {
      setStatus("Not renamed: " + r.body.detail, "error");
      return;
    }
    const from = file.path;
    Object.assign(file, { path: r.body.path, hash: r.body.hash });
    hideForms();
    showPath();
    showReload("Renamed " + from + " to " + file.path + ".", r.body.reload);
    window.history.replaceState(null, "", "/ui/editor?path=" + encodeURIComponent(file.path));
    listFiles();
    check();
  });
  ui.deleteBtn.addEventListener("click", () => {
    hideForms();
    $("ed-delete-name").textContent = file.path;
    ui.deleteForm.hidden = false;
  });
  ui.deleteNo.addEventListener("click", hideForms);
  ui.deleteForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    const r = await call("DELETE", "/ui/editor/files/" + encodePath(file.path) + "?base_hash=" + encodeURIComponent(file.hash));
    if (!r.ok) {
      setStatus("Not deleted: " + r.body.detail, "error");
      return;
    }
    Object.assign(file, { path: "", hash: "", saved: "", open: false });
    view.setState(EditorState.create({ doc: "", extensions: extensions() }));
    ui.host.hidden = true;
    ui.empty.hidden = false;
    hideForms();
    showPath();
    showReload("Deleted " + r.body.path + ".", r.body.reload);
    window.history.replaceState(null, "", "/ui/editor");
    listFiles();
  });

  ui.newForm.addEventListener("submit", (e) => {
    e.preventDefault();
    const name = ui.newName.value.trim();
    if (name) startNew(ui.newKind.value, name);
  });
  const askName = (kind, title) => {
    ui.newKind.value = kind;
    $("ed-new-title").textContent = "New " + (title || kind);
    ui.newForm.hidden = false;
    ui.newName.focus();
  };

  // The file list and the templates, from the server.
  async function listFiles() {
    const r = await call("GET", "/ui/editor/files");
    if (!r.ok) {
      setStatus("Cannot list the files: " + r.body.detail, "error");
      return;
    }
    ui.files.replaceChildren(...(r.body.files || []).map((f) => {
      const li = document.createElement("li");
      const a = document.createElement("a");
      a.href = "/ui/editor?path=" + encodeURIComponent(f.path);
      a.textContent = f.path;
      a.dataset.testid = "editor-file";
      a.dataset.path = f.path;
      a.addEventListener("click", (e) => {
        if (e.metaKey || e.ctrlKey || e.shiftKey) return;
        e.preventDefault();
        open(f.path, true);
      });
      li.append(a);
      return li;
    }));
    ui.templates.replaceChildren(...(r.body.templates || []).map((t) => {
      const li = document.createElement("li");
      const a = document.createElement("a");
      a.href = "/ui/editor?new=" + encodeURIComponent(t.kind);
      a.textContent = "New " + t.title + "…";
      a.dataset.testid = "editor-template";
      a.addEventListener("click", (e) => { e.preventDefault(); askName(t.kind, t.title); });
      li.append(a);
      return li;
    }));
    markCurrent();
  }
  function markCurrent() {
    for (const a of ui.files.querySelectorAll("a")) {
      if (a.dataset.path === file.path) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    }
  }

  window.addEventListener("popstate", () => {
    const p = new URLSearchParams(location.search).get("path");
    if (p && p !== file.path) open(p, false);
  });
  window.addEventListener("beforeunload", (e) => { if (dirty()) e.preventDefault(); });
  // Ctrl-S (⌘-S) saves wherever the focus is on the page; in the editor its
  // own key binding has handled it already.
  document.addEventListener("keydown", (e) => {
    if ((e.ctrlKey || e.metaKey) && !e.altKey && e.key.toLowerCase() === "s" && !e.defaultPrevented) {
      e.preventDefault();
      save(false);
    }
  });

  listFiles();
  const q = new URLSearchParams(location.search);
  if (q.get("path")) open(q.get("path"), false);
  else if (q.get("new")) askName(q.get("new"), "");
  showPath();
  // For tests and people at the console: the editor's view.
  root.editor = view;
}
