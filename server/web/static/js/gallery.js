// The gallery: a virtual grid over the history. Only the rows in view (plus one
// above and below) exist as elements, pages of results come by keyset pagination
// (`before` = the last page's cursor) as the grid scrolls near their end, and
// each cell loads only its 256 px thumbnail.

import { getJSON, withToken } from "./api.js";

const PAGE = 120; // results per request: a few screens of thumbnails

export class Gallery {
  constructor({ scroll, space, empty, count, filters, onOpen }) {
    Object.assign(this, { scroll, space, empty, count, filters, onOpen });
    this.items = [];
    this.next = undefined; // undefined: not loaded yet; null: no more
    this.loading = false;
    this.generation = 0;
    this.cells = new Map(); // index -> element
    this.cell = parseInt(getComputedStyle(document.documentElement).getPropertyValue("--cell"), 10) || 168;
    this.cols = 1;
    this.painted = false;
    scroll.addEventListener("scroll", () => this.schedule());
    new ResizeObserver(() => this.layout()).observe(scroll);
  }

  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => { this.frame = 0; this.render(); });
  }

  query(cursor) {
    const params = new URLSearchParams({ limit: String(PAGE) });
    if (cursor) params.set("before", cursor);
    for (const [key, value] of Object.entries(this.filters())) if (value) params.set(key, value);
    return `/api/history?${params}`;
  }

  reset() {
    this.generation += 1;
    this.items = [];
    this.next = undefined;
    this.error = "";
    delete this.space.dataset.query;
    this.loading = false;
    for (const element of this.cells.values()) element.remove();
    this.cells.clear();
    this.scroll.scrollTop = 0;
    this.layout();
    return this.loadMore();
  }

  async loadMore() {
    if (this.loading || this.next === null) return;
    this.loading = true;
    const generation = this.generation;
    try {
      const page = await getJSON(this.query(this.next));
      if (generation !== this.generation) return; // the filters changed meanwhile
      this.items.push(...page.items);
      this.next = page.next ?? null;
      this.space.dataset.query = this.query(null); // what the grid shows (the tests wait on it)
    } catch (error) {
      if (generation === this.generation) { this.next = null; this.error = error.message; this.layout(); }
      return;
    } finally {
      if (generation === this.generation) this.loading = false;
    }
    this.layout();
  }

  layout() {
    this.cols = Math.max(1, Math.floor(this.scroll.clientWidth / this.cell));
    const rows = Math.ceil(this.items.length / this.cols) + (this.next ? 1 : 0);
    this.space.style.height = `${rows * this.cell}px`;
    this.empty.hidden = !(this.items.length === 0 && this.next === null && !this.error);
    this.count.textContent = this.error || (this.next === undefined ? "" : `${this.items.length}${this.next ? "+" : ""} result${this.items.length === 1 ? "" : "s"}`);
    this.count.className = this.error ? "error" : "muted";
    this.render();
  }

  render() {
    const { cell, cols } = this;
    const top = this.scroll.scrollTop;
    const first = Math.max(0, Math.floor(top / cell) - 1) * cols;
    const last = Math.min(this.items.length, (Math.ceil((top + this.scroll.clientHeight) / cell) + 1) * cols);
    for (const [index, element] of this.cells) {
      if (index < first || index >= last) { element.remove(); this.cells.delete(index); }
    }
    for (let index = first; index < last; index++) {
      if (this.cells.has(index)) continue;
      const element = this.makeCell(this.items[index], index);
      element.style.left = `${(index % cols) * cell}px`;
      element.style.top = `${Math.floor(index / cols) * cell}px`;
      this.space.append(element);
      this.cells.set(index, element);
    }
    // Fetch the next page while the artist is still two screens from its end.
    if (this.next && last + cols * Math.ceil(this.scroll.clientHeight / cell) * 2 >= this.items.length) this.loadMore();
    if (!this.painted && this.cells.size) this.notePaint();
  }

  makeCell(item, index) {
    const element = document.createElement("div");
    element.className = "cell";
    element.tabIndex = 0;
    element.dataset.id = item.id;
    element.dataset.index = index;
    element.title = item.prompt || `${item.mode} ${item.width}x${item.height}`;
    const img = document.createElement("img");
    img.decoding = "async";
    img.alt = item.prompt || "";
    img.src = withToken(item.thumb);
    const caption = document.createElement("span");
    caption.className = "caption";
    caption.textContent = item.prompt || item.mode;
    element.append(img, caption);
    if (item.starred) {
      const star = document.createElement("span");
      star.className = "star";
      star.textContent = "★";
      element.append(star);
    }
    const open = () => this.onOpen(item);
    element.addEventListener("click", open);
    element.addEventListener("keydown", (e) => { if (e.key === "Enter") open(); });
    return element;
  }

  // The first useful paint: every thumbnail in view decoded. Marked for the
  // benchmark (bench/gallery.py) with the Performance API.
  notePaint() {
    this.painted = true;
    const images = [...this.cells.values()].map((c) => c.querySelector("img"));
    Promise.all(images.map((img) => img.decode().catch(() => null))).then(() => {
      performance.mark("paintwire-gallery-painted");
      document.body.dataset.galleryPainted = String(images.length);
    });
  }

  // A result changed elsewhere (star, delete): redraw its cell.
  update(id, changes) {
    const index = this.items.findIndex((item) => item.id === id);
    if (index < 0) return;
    if (changes === null) this.items.splice(index, 1);
    else Object.assign(this.items[index], changes);
    for (const element of this.cells.values()) element.remove();
    this.cells.clear();
    this.layout();
  }
}
