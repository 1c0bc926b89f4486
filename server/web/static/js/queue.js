// The queue: every client's running and queued jobs, refreshed while in view.
// The page may cancel only its own jobs: it sends the cancel on its own
// websocket, and the server refuses a cancel for any other connection's job.

import { getJSON } from "./api.js";

const REFRESH_MS = 700;

export class QueueView {
  constructor(wire, body, empty) {
    Object.assign(this, { wire, body, empty });
    this.timer = 0;
  }

  show() {
    this.stop();
    const tick = async () => {
      await this.refresh();
      this.timer = setTimeout(tick, REFRESH_MS);
    };
    tick();
  }

  stop() {
    clearTimeout(this.timer);
    this.timer = 0;
  }

  async refresh() {
    let jobs;
    try {
      ({ jobs } = await getJSON("/api/queue"));
    } catch (error) {
      this.empty.hidden = false;
      this.empty.textContent = error.message;
      return;
    }
    this.empty.hidden = jobs.length > 0;
    this.empty.textContent = "Nothing is queued or running.";
    this.body.replaceChildren(...jobs.map((job) => this.row(job)));
  }

  row(job) {
    const tr = document.createElement("tr");
    tr.dataset.job = job.id;
    const mine = this.wire.owns(job.id);
    const cells = [mine ? `${job.client} (this page)` : job.client, job.mode, job.model || job.engine, job.state === "running" ? "running" : `queued, ${job.position} ahead`];
    for (const text of cells) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    const progress = document.createElement("td");
    const bar = document.createElement("div");
    bar.className = "bar";
    const fill = document.createElement("div");
    fill.style.width = `${Math.round(job.fraction * 100)}%`;
    bar.append(fill);
    progress.append(bar);
    const action = document.createElement("td");
    if (mine) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = "Cancel";
      button.className = "cancel";
      button.addEventListener("click", () => { button.disabled = true; this.wire.cancel(job.id); });
      action.append(button);
    }
    tr.append(progress, action);
    return tr;
  }
}
