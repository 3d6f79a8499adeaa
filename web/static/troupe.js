// Troupe console glue: the streaming chat pane, uploads with progress, live
// refresh on reload, copy buttons. Everything else is plain HTML and htmx.
(() => {
  "use strict";
  const $ = (sel, root) => (root || document).querySelector(sel);
  const byId = (id) => document.getElementById(id);
  // Parse HTML in the context of where it goes (table rows need a table).
  const frag = (html, ctx) => {
    const r = document.createRange();
    r.selectNodeContents(ctx || document.body);
    return r.createContextualFragment(html);
  };

  // Chat: a POST answers with server-sent events of server-rendered HTML
  // (console/ui/chat.go, held.go, workflowrun.go): start, text, append,
  // replace, step, end. Workflow forms: fields, no message.
  function initChat(form) {
    const input = byId("chat-input"), send = byId("chat-send"), cancel = byId("chat-cancel");
    const transcript = byId("transcript"), status = byId("chat-status"), session = byId("chat-session");
    let runID = "", controller;

    const busy = (on) => { send.disabled = on; cancel.hidden = !on; transcript.ariaBusy = on; };
    const scroll = () => { transcript.scrollTop = transcript.scrollHeight; };
    const fail = (msg) => {
      transcript.append(frag('<p class="error" role="alert" data-testid="chat-error"></p>'));
      transcript.lastChild.textContent = msg;
      scroll();
    };
    const handle = (name, d) => {
      const t = byId(d.t);
      switch (name) {
        case "start":
          runID = d.run;
          if (session) session.value = d.session;
          $(".hint-empty", transcript)?.remove();
          transcript.append(frag(d.h));
          status.textContent = "answering…";
          break;
        case "text": t?.append(d.s); break;
        case "append": t?.append(frag(d.h, t)); break;
        case "replace": t?.replaceWith(frag(d.h, t.parentNode)); break;
        case "step": for (const g of document.querySelectorAll("g[data-step]")) if (g.dataset.step === d.n) g.dataset.status = d.s; break;
        case "end":
          if (t) { t.append(frag(d.h)); t.classList.remove("streaming"); htmx.process(t); }
          status.textContent = "";
          break;
      }
      scroll();
    };

    // post streams the answer to the chat form or to a paused turn's form.
    async function post(url, body, sent) {
      if (controller) return;
      controller = new AbortController();
      busy(true);
      try {
        const res = await fetch(url, { method: "POST", body, signal: controller.signal });
        if (!res.ok) {
          fail((await res.text()) || res.statusText);
          return;
        }
        sent?.();
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let i;
          while ((i = buf.indexOf("\n\n")) >= 0) {
            // event: and data: lines (console/sse); pings are comments.
            const m = /event: (.*)\ndata: (.*)/.exec(buf.slice(0, i));
            buf = buf.slice(i + 2);
            if (m) handle(m[1], JSON.parse(m[2]));
          }
        }
      } catch (err) {
        if (err.name !== "AbortError") fail("The connection to the server was lost: " + err.message);
      } finally {
        controller = null;
        runID = "";
        busy(false);
        input?.focus();
      }
    }

    const submit = () => {
      if (input && !input.value.trim()) return;
      post(form.dataset.chat, new FormData(form), () => { if (session) form.reset(); });
    };
    form.addEventListener("submit", (e) => { e.preventDefault(); submit(); });
    // A paused turn's decisions stream the rest into it.
    transcript.addEventListener("submit", (e) => {
      const u = e.target.dataset.continue;
      if (u) { e.preventDefault(); post(u, new URLSearchParams(new FormData(e.target, e.submitter))); }
    });
    if (session) input.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); submit(); }
    });
    const stop = () => {
      if (runID) fetch("/ui/runs/" + runID + "/cancel", { method: "POST" });
      else if (controller) controller.abort();
    };
    cancel.addEventListener("click", stop);
    document.addEventListener("keydown", (e) => { if (e.key === "Escape" && controller) stop(); });
    scroll();
  }

  // Uploads: a request per file, for its progress; the answer is the
  // document's table row, which polls its status until it is done.
  function initUpload(form) {
    const list = byId("uploads"), picker = $("input[type=file]", form);
    const upload = (file) => {
      list.append(frag('<li data-testid="upload"><span></span> <progress max="1"></progress></li>'));
      const li = list.lastChild, label = li.firstChild, bar = li.lastChild;
      label.textContent = file.name + ": uploading";
      const body = new FormData();
      body.append("knowledge_id", form.elements.knowledge_id.value);
      body.append("file", file, file.name);
      const xhr = new XMLHttpRequest();
      xhr.open("POST", form.dataset.upload);
      xhr.upload.onprogress = (e) => { if (e.lengthComputable) bar.value = e.loaded / e.total; };
      xhr.onload = () => {
        if (xhr.status >= 200 && xhr.status < 300) {
          bar.remove();
          label.textContent = file.name + ": uploaded, ingesting (status below)";
          const row = frag(xhr.responseText, byId("doc-rows")).firstElementChild;
          const old = row && byId(row.id);
          if (old) old.replaceWith(row); else if (row) byId("doc-rows").prepend(row);
          if (row) htmx.process(row);
          byId("no-docs")?.remove();
          htmx.trigger(document.body, "troupe-docs");
        } else {
          li.className = "error";
          label.textContent = file.name + ": " + (xhr.responseText || xhr.statusText);
        }
      };
      xhr.onerror = () => { li.className = "error"; label.textContent = file.name + ": upload failed (network)"; };
      xhr.send(body);
    };
    const all = (files) => { for (const f of files) upload(f); };
    picker.addEventListener("change", () => { all(picker.files); picker.value = ""; });
    form.addEventListener("dragover", (e) => { e.preventDefault(); form.classList.add("over"); });
    form.addEventListener("dragleave", () => form.classList.remove("over"));
    form.addEventListener("drop", (e) => { e.preventDefault(); form.classList.remove("over"); all(e.dataTransfer.files); });
    form.addEventListener("submit", (e) => e.preventDefault());
  }

  // Live refresh: data-live regions re-render when the folder reloads.
  function initLive() {
    const live = document.querySelectorAll("[data-live][id]");
    if (!live.length || !window.EventSource) return;
    const es = new EventSource("/ui/events");
    es.addEventListener("reload", () => {
      for (const el of live) {
        const sel = "#" + el.id;
        if (document.querySelector(sel)) htmx.ajax("GET", location.href, { target: sel, select: sel, swap: "outerHTML" });
      }
    });
    addEventListener("pagehide", () => es.close());
  }

  document.addEventListener("DOMContentLoaded", () => {
    const chat = byId("chat-form");
    if (chat) initChat(chat);
    const up = $("form[data-upload]");
    if (up) initUpload(up);
    initLive();
    document.addEventListener("click", (e) => {
      const b = e.target.closest("[data-copy]");
      if (b) navigator.clipboard?.writeText(byId(b.dataset.copy).textContent).then(() => { b.textContent = "Copied"; });
    });
    document.addEventListener("submit", (e) => {
      const msg = e.target.dataset.confirm;
      if (msg && !confirm(msg)) e.preventDefault();
    });
  });
})();
