// The page: views, the token, and the one websocket connection it shares.

import { getJSON, setToken, takeTokenFromAddress, token } from "./api.js";
import { CanvasClient } from "./canvas.js";
import { Detail } from "./detail.js";
import { Gallery } from "./gallery.js";
import { showModels } from "./models.js";
import { QueueView } from "./queue.js";
import { WireClient } from "./wire.js";

const $ = (id) => document.getElementById(id);

takeTokenFromAddress();

const wire = new WireClient(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
const canvas = new CanvasClient(wire);
const queue = new QueueView(wire, $("queue-table").tBodies[0], $("queue-empty"));
const detail = new Detail((id, changes) => gallery.update(id, changes));
const gallery = new Gallery({
  scroll: $("gallery-scroll"),
  space: $("gallery-space"),
  empty: $("gallery-empty"),
  count: $("gallery-count"),
  filters: galleryFilters,
  onOpen: (item) => detail.open(item),
});

function dayStart(value, days = 0) {
  if (!value) return "";
  const date = new Date(`${value}T00:00:00`);
  date.setDate(date.getDate() + days);
  return date.toISOString();
}

function galleryFilters() {
  return {
    q: $("filter-q").value.trim(),
    model: $("filter-model").value.trim(),
    mode: $("filter-mode").value,
    starred: $("filter-starred").checked ? "1" : "",
    since: dayStart($("filter-since").value),
    until: dayStart($("filter-until").value, 1), // the whole chosen day
  };
}

// -- views ----------------------------------------------------------------------------

let view = "gallery";

function show(name) {
  view = name;
  for (const button of document.querySelectorAll("nav button")) button.classList.toggle("active", button.dataset.view === name);
  for (const section of document.querySelectorAll(".view")) section.hidden = section.id !== `view-${name}`;
  if (name === "queue") queue.show();
  else queue.stop();
  if (name === "gallery") gallery.reset();
  if (name === "models") refreshModels();
}

for (const button of document.querySelectorAll("nav button")) button.addEventListener("click", () => show(button.dataset.view));

let typing = 0;
$("filters").addEventListener("input", (e) => {
  clearTimeout(typing);
  typing = setTimeout(() => gallery.reset(), e.target.type === "search" ? 250 : 0); // wait for the typing to pause
});
$("filters").addEventListener("submit", (e) => e.preventDefault());

async function refreshModels() {
  try {
    await showModels($("models-table").tBodies[0], $("engine-notices"));
  } catch (error) {
    $("engine-notices").textContent = error.message;
  }
}
$("models-rescan").addEventListener("click", () => { if (wire.connected) wire.rescan(); });

function fillFilterChoices(capabilities) {
  // Models: suggestions only, since results of a model that was removed stay in the history.
  $("filter-models").replaceChildren(...(capabilities.models || []).map((m) => new Option(m.label || m.name, m.name)));
  const mode = $("filter-mode");
  const keep = mode.value;
  const modes = new Map();
  for (const engine of capabilities.engines || []) for (const m of engine.modes || []) if (!modes.has(m.name)) modes.set(m.name, m.label || m.name);
  mode.replaceChildren(new Option("Any mode", ""), ...[...modes].map(([name, label]) => new Option(label, name)));
  mode.value = keep;
}

// -- connection and token ----------------------------------------------------------------

function connectionStatus(text, state) {
  const span = $("connection");
  span.textContent = text;
  span.className = `status ${state}`;
}

function askForToken(message) {
  $("token-form").hidden = false;
  $("token-message").textContent = message || "";
  $("token-input").focus();
}

window.addEventListener("paintwire-unauthorized", (e) => askForToken(e.detail));

$("token-form").addEventListener("submit", (e) => {
  e.preventDefault();
  setToken($("token-input").value.trim());
  $("token-form").hidden = true;
  start();
});

function adopt(capabilities) {
  canvas.setCapabilities(capabilities);
  fillFilterChoices(capabilities);
  if (view === "models") refreshModels();
}

wire.addEventListener("capabilities", (e) => adopt(e.detail));
wire.addEventListener("closed", () => connectionStatus("disconnected: reload the page to reconnect", "bad"));
wire.addEventListener("notice", (e) => connectionStatus(e.detail.message, "bad"));

// The gallery loads over HTTP while the websocket says hello: the first thumbnails
// need not wait for the capabilities.
async function start() {
  connectionStatus("connecting…", "");
  show(view);
  try {
    adopt(await wire.connect(token()));
    connectionStatus("connected", "ok");
  } catch (error) {
    connectionStatus("not connected", "bad");
    if (error.code === "unauthorized") askForToken(error.message);
    else connectionStatus(error.message, "bad");
  }
}

start();
