// Every model the server found, with its kind and whether it can be used (and
// if not, the server's sentence saying what to do).

import { getJSON } from "./api.js";

export async function showModels(body, notices) {
  const { engines, models } = await getJSON("/api/models");
  notices.replaceChildren(...engines.filter((e) => e.notice).map((e) => {
    const p = document.createElement("p");
    p.className = "error";
    p.textContent = `${e.label}: ${e.notice}`;
    return p;
  }));
  body.replaceChildren(...models.map((m) => {
    const tr = document.createElement("tr");
    const status = m.problem ? `cannot be used: ${m.problem}` : "ready";
    for (const text of [m.label === m.name ? m.name : `${m.label} (${m.name})`, m.engine, m.kind, status]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    if (m.problem) tr.lastChild.className = "error";
    return tr;
  }));
  return models;
}
