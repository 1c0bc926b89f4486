// One result: the image, every recorded setting, star, delete, download, and
// "send to" a connected Krita or GIMP (a recall message the plug-in offers to apply).

import { deleteJSON, getJSON, postJSON, withToken } from "./api.js";

const $ = (id) => document.getElementById(id);

function cellText(value) {
  if (value === null || value === undefined) return "";
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

export class Detail {
  constructor(onChange) {
    this.onChange = onChange; // (id, changes | null) for the gallery
    this.dialog = $("detail");
    this.item = null;
    $("detail-star").addEventListener("click", () => this.star());
    $("detail-delete").addEventListener("click", () => this.remove());
    $("detail-send").addEventListener("click", () => this.send());
  }

  status(text, error = false) {
    const p = $("detail-status");
    p.textContent = text;
    p.className = error ? "error" : "muted";
  }

  async open(summary) {
    this.item = summary;
    this.armed = false;
    $("detail-delete").textContent = "Delete";
    this.status("");
    $("detail-image").src = withToken(summary.image);
    $("detail-image").alt = summary.prompt || "";
    $("detail-download").href = withToken(summary.image);
    $("detail-download").download = `paintwire-${summary.id}.png`;
    $("detail-prompt").textContent = summary.prompt || "";
    this.showStar(summary.starred);
    this.fill(summary, {});
    if (!this.dialog.open) this.dialog.showModal();
    const [detail, clients] = await Promise.allSettled([getJSON(`/api/history/${encodeURIComponent(summary.id)}`), getJSON("/api/clients")]);
    if (this.item !== summary) return;
    if (detail.status === "fulfilled") { this.item = detail.value; this.fill(detail.value, detail.value.settings || {}); }
    else this.status(detail.reason.message, true);
    this.fillClients(clients.status === "fulfilled" ? clients.value : []);
  }

  fill(item, settings) {
    const rows = [];
    const shown = { created: item.created, client: item.client, engine: item.engine, mode: item.mode, model: item.model, seed: item.seed, size: `${item.width}x${item.height}`, parent: item.parent };
    const seen = new Set(["prompt"]); // the prompt shows above the table
    for (const [key, value] of [...Object.entries(shown), ...Object.entries(settings)]) {
      if (value === null || value === undefined || value === "" || seen.has(key)) continue;
      seen.add(key);
      const tr = document.createElement("tr");
      const th = document.createElement("th");
      const td = document.createElement("td");
      th.textContent = key;
      td.textContent = cellText(value);
      tr.append(th, td);
      rows.push(tr);
    }
    $("detail-settings").tBodies[0].replaceChildren(...rows);
  }

  fillClients(clients) {
    const select = $("detail-clients");
    select.replaceChildren(...clients.map((c) => new Option(c.name, c.id)));
    select.disabled = $("detail-send").disabled = clients.length === 0;
    if (!clients.length) select.append(new Option("no Krita or GIMP connected", ""));
  }

  showStar(starred) {
    $("detail-star").textContent = starred ? "★ Starred" : "☆ Star";
    $("detail-star").setAttribute("aria-pressed", String(!!starred));
  }

  async star() {
    const starred = !this.item.starred;
    try {
      await postJSON(`/api/history/${encodeURIComponent(this.item.id)}/star`, { starred });
      this.item.starred = starred;
      this.showStar(starred);
      this.onChange(this.item.id, { starred });
    } catch (error) {
      this.status(error.message, true);
    }
  }

  // Two clicks, so a stray click cannot delete (and no browser dialog is needed).
  async remove() {
    const button = $("detail-delete");
    if (!this.armed) {
      this.armed = true;
      button.textContent = "Click again to delete";
      setTimeout(() => { this.armed = false; button.textContent = "Delete"; }, 4000);
      return;
    }
    try {
      await deleteJSON(`/api/history/${encodeURIComponent(this.item.id)}`);
      this.onChange(this.item.id, null);
      this.dialog.close();
    } catch (error) {
      this.status(error.message, true);
    }
  }

  async send() {
    const select = $("detail-clients");
    const client = select.value;
    if (!client) return;
    const name = select.selectedOptions[0].textContent;
    try {
      await postJSON(`/api/history/${encodeURIComponent(this.item.id)}/send`, { client });
      this.status(`Sent to ${name}: it offers to apply the settings or open the image.`);
    } catch (error) {
      this.status(error.message, true);
    }
  }
}
