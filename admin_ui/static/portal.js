// BitBot's page inside Bitrix24. Every request carries the session in a header, so the page
// works where the browser keeps third-party cookies away from the iframe. Pages come from the
// server; this script fetches them, sends forms to the JSON API, and runs the test chat.
(function () {
  "use strict";

  const meta = document.querySelector('meta[name="bitbot-session"]');
  const token = meta ? meta.content : "";
  const say = (name) => document.body.dataset["msg" + name] || "";

  async function call(url, method, body) {
    const headers = { "X-BitBot-Session": token, Accept: "application/json" };
    const init = { method: method || "GET", headers: headers, credentials: "same-origin" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(url, init);
    let data = null;
    if (response.status !== 204) {
      try { data = await response.json(); } catch (_) { data = null; }
    }
    return { ok: response.ok, status: response.status, data: data };
  }

  function problem(result) {
    return (result.data && result.data.error && result.data.error.message) || say("Failed");
  }

  async function navigate(url, flash) {
    const response = await fetch(url, { headers: { "X-BitBot-Session": token } });
    const html = await response.text();
    const next = new DOMParser().parseFromString(html, "text/html").getElementById("app");
    const app = document.getElementById("app");
    if (!next || !app) {
      document.open(); document.write(html); document.close();
      return;
    }
    app.replaceWith(next);
    document.title = next.dataset.title || document.title;
    window.scrollTo(0, 0);
    start(next);
    if (flash) toast(flash.text, flash.bad);
  }

  function toast(text, bad) {
    const box = document.querySelector("#app .toast");
    if (!box || !text) return;
    box.textContent = text;
    box.classList.toggle("bad", !!bad);
    box.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { box.hidden = true; }, bad ? 9000 : 3000);
  }

  // -- forms -------------------------------------------------------------------------------

  function formData(form) {
    const data = {};
    for (const el of form.querySelectorAll("input[name], select[name], textarea[name]")) {
      if (el.type === "radio" && !el.checked) continue;
      if (el.type === "checkbox") data[el.name] = el.checked;
      else if (el.dataset.kind === "int") data[el.name] = el.value === "" ? null : Number(el.value);
      else data[el.name] = el.value;
    }
    if (form.hasAttribute("data-texts")) {
      data.texts = [...form.querySelectorAll("[data-text-row]")].map((row) => {
        const text = {};
        for (const el of row.querySelectorAll("[data-text]")) text[el.dataset.text] = el.value;
        return text;
      });
    }
    return data;
  }

  function clearErrors(form) {
    for (const el of form.querySelectorAll("[data-error-for]")) el.textContent = "";
    for (const el of form.querySelectorAll(".has-error")) el.classList.remove("has-error");
    const message = form.querySelector("[data-form-message]");
    if (message) message.hidden = true;
  }

  function errorSlot(form, name) {
    const parts = name.split(".");
    if (parts[0] === "texts" && parts.length === 3) {
      const row = form.querySelectorAll("[data-text-row]")[Number(parts[1])];
      return row && row.querySelector('[data-error-for$=".' + parts[2] + '"]');
    }
    return form.querySelector('[data-error-for="' + name + '"]');
  }

  function showErrors(form, result) {
    const error = (result.data && result.data.error) || {};
    const fields = error.fields || {};
    let first = null;
    for (const [name, text] of Object.entries(fields)) {
      const slot = errorSlot(form, name);
      if (!slot) continue;
      slot.textContent = text;
      const field = slot.closest(".field");
      if (field) field.classList.add("has-error");
      first = first || field;
    }
    const message = form.querySelector("[data-form-message]");
    if (message) {
      message.textContent = problem(result);
      message.hidden = false;
    }
    (first || message || form).scrollIntoView({ block: "center", behavior: "smooth" });
  }

  async function submit(form) {
    clearErrors(form);
    const button = form.querySelector('button[type="submit"]');
    if (button) button.disabled = true;
    try {
      const result = await call(form.dataset.api, form.dataset.method, formData(form));
      if (!result.ok) return showErrors(form, result);
      const next = (form.dataset.next || "").replace("{id}", result.data && result.data.id);
      const warning = result.data && (result.data.sync_error || result.data.registration_error);
      await navigate(next || location.pathname, { text: warning || say("Saved"), bad: !!warning });
    } finally {
      if (button) button.disabled = false;
    }
  }

  async function check(form) {
    const box = form.querySelector("[data-check-result]");
    clearErrors(form);
    box.hidden = false;
    box.className = "check-result";
    box.textContent = say("Checking");
    const result = await call(form.dataset.check, "POST", formData(form));
    box.textContent = "";
    if (!result.ok) {
      box.hidden = true;
      return showErrors(form, result);
    }
    box.classList.add(result.data.ok ? "ok" : "bad");
    const lines = [result.data.message, ...(result.data.warnings || [])];
    lines.forEach((line, index) => {
      const p = document.createElement("p");
      p.textContent = line;
      if (index) p.className = "warn";
      box.appendChild(p);
    });
  }

  function showProviderFields(form) {
    const select = form.querySelector("[data-provider-select]");
    if (!select) return;
    const option = select.selectedOptions[0];
    const type = option ? option.dataset.type : "";
    for (const el of form.querySelectorAll("[data-only]")) el.hidden = el.dataset.only !== type;
    const base = form.querySelector("[data-base-url-input]");
    if (base && option) base.placeholder = option.dataset.baseUrl || "";
  }

  // -- buttons that act directly (delete, register again) --------------------------------

  async function act(button) {
    if (button.hasAttribute("data-confirm") && !button.classList.contains("armed")) {
      button.dataset.label = button.textContent;
      button.textContent = say("Confirm");
      button.classList.add("armed");
      setTimeout(() => disarm(button), 5000);
      return;
    }
    disarm(button);
    button.disabled = true;
    const result = await call(button.dataset.action, button.dataset.method || "POST");
    button.disabled = false;
    if (result.ok) {
      const deleted = button.dataset.method === "DELETE";
      return navigate(button.dataset.next, { text: deleted ? say("Deleted") : say("Saved") });
    }
    const section = button.closest("section") || document;
    const message = section.querySelector("[data-action-message]");
    if (message) {
      message.textContent = problem(result);
      message.hidden = false;
    } else {
      toast(problem(result), true);
    }
    const force = section.querySelector("[data-force]");
    if (force && result.status === 502) force.hidden = false;
  }

  function disarm(button) {
    if (!button.classList.contains("armed")) return;
    button.classList.remove("armed");
    button.textContent = button.dataset.label || button.textContent;
  }

  // -- the test chat -------------------------------------------------------------------------

  function bubble(log, text, who) {
    const empty = log.querySelector("[data-chat-empty]");
    if (empty) empty.remove();
    const p = document.createElement("div");
    p.className = "bubble " + who;
    p.textContent = text;
    log.appendChild(p);
    log.scrollTop = log.scrollHeight;
    return p;
  }

  function showReply(chat, reply) {
    const log = chat.querySelector("[data-chat-log]");
    const node = bubble(log, reply.text || "", reply.fallback ? "bot fallback" : "bot");
    if (reply.fallback) node.title = say("Fallback");
    if (!reply.buttons || !reply.buttons.length) return;
    const row = document.createElement("div");
    row.className = "chat-buttons";
    for (const b of reply.buttons) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "btn small";
      button.textContent = b.text;
      button.addEventListener("click", () => send(chat, b.value || b.text));
      row.appendChild(button);
    }
    log.appendChild(row);
    log.scrollTop = log.scrollHeight;
  }

  async function send(chat, text) {
    const log = chat.querySelector("[data-chat-log]");
    bubble(log, text, "me");
    const sent = await call(chat.dataset.chat, "POST", { text: text });
    if (!sent.ok) return bubble(log, problem(sent), "error");
    const waiting = bubble(log, say("Waiting"), "waiting");
    const url = chat.dataset.chat + "/" + sent.data.chat_id + "?wait=20";
    for (let round = 0; round < 4; round++) {
      const got = await call(url);
      if (!got.ok) { waiting.remove(); return bubble(log, problem(got), "error"); }
      if (got.data.replies.length) {
        waiting.remove();
        return got.data.replies.forEach((reply) => showReply(chat, reply));
      }
    }
    waiting.remove();
    bubble(log, say("NoAnswer"), "error");
  }

  // -- wiring ----------------------------------------------------------------------------------

  function start(root) {
    for (const form of root.querySelectorAll("[data-provider-form]")) showProviderFields(form);
  }

  document.addEventListener("click", (event) => {
    const target = event.target instanceof Element ? event.target : null;
    if (!target) return;
    const link = target.closest("a[href]");
    if (link && link.origin === location.origin && link.pathname.startsWith("/b24/ui/")) {
      if (event.ctrlKey || event.metaKey || event.shiftKey) return;
      event.preventDefault();
      return navigate(link.href);
    }
    const action = target.closest("[data-action]");
    if (action) return act(action);
    if (target.closest("[data-check-button]")) return check(target.closest("form"));
    if (target.closest("[data-add-row]")) {
      const form = target.closest("form");
      const template = form.querySelector("[data-text-template]");
      form.querySelector("[data-text-rows]").appendChild(template.content.cloneNode(true));
      return;
    }
    if (target.closest("[data-remove-row]")) {
      const rows = target.closest("form").querySelectorAll("[data-text-row]");
      if (rows.length > 1) target.closest("[data-text-row]").remove();
      return;
    }
    if (target.closest("[data-chat-restart]")) {
      const chat = target.closest("[data-chat]");
      call(chat.dataset.chat + "/restart", "POST").then(() => {
        chat.querySelector("[data-chat-log]").replaceChildren();
      });
    }
  });

  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (form.matches("[data-chat-form]")) {
      event.preventDefault();
      const input = form.querySelector('input[name="text"]');
      const text = input.value.trim();
      input.value = "";
      if (text) send(form.closest("[data-chat]"), text);
      return;
    }
    if (form.matches("form[data-api]")) {
      event.preventDefault();
      submit(form);
    }
  });

  document.addEventListener("input", (event) => {
    const field = event.target instanceof Element && event.target.closest(".field.has-error");
    if (!field) return;
    field.classList.remove("has-error");
    for (const slot of field.querySelectorAll("[data-error-for]")) slot.textContent = "";
  });

  document.addEventListener("change", (event) => {
    if (event.target.matches("[data-provider-select]")) showProviderFields(event.target.form);
  });

  start(document);
})();
