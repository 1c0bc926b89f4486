// The canvas client: a picture (uploaded, or the last result), a mask painted
// over it, and the chosen mode's form as the server lays it out. Jobs go through
// the page's websocket like any plug-in's; progress and previews show as they come.

import { pageModes } from "./modes.js";
import { ParamForm } from "./form.js";
import { placeOver } from "./compositing.js";

const $ = (id) => document.getElementById(id);

export class CanvasClient {
  constructor(wire) {
    this.wire = wire;
    this.modes = [];
    this.form = new ParamForm($("canvas-form"));
    this.picture = $("canvas-picture");
    this.mask = $("canvas-mask");
    this.hasPicture = false;
    this.current = null; // the running job's handle
    $("canvas-mode").addEventListener("change", () => this.modeChanged());
    $("canvas-model").addEventListener("change", () => this.choiceChanged());
    $("canvas-upload").addEventListener("change", (e) => this.upload(e.target.files[0]));
    $("canvas-clear-mask").addEventListener("click", () => this.clearMask());
    $("canvas-run").addEventListener("click", () => this.run());
    $("canvas-cancel").addEventListener("click", () => this.cancel());
    this.paintMask();
  }

  setCapabilities(capabilities) {
    this.capabilities = capabilities;
    const select = $("canvas-mode");
    const before = select.value;
    this.modes = pageModes(capabilities);
    select.replaceChildren(...this.modes.map((m) => new Option(m.label, m.name)));
    if (this.modes.some((m) => m.name === before)) select.value = before;
    this.modeChanged();
  }

  get mode() {
    return this.modes.find((m) => m.name === $("canvas-mode").value);
  }

  get choice() {
    const mode = this.mode;
    return mode ? mode.choices[parseInt($("canvas-model").value, 10) || 0] : null;
  }

  modeChanged() {
    const mode = this.mode;
    $("canvas-mode-help").textContent = mode ? mode.help : "No mode of this server can run from this page.";
    const select = $("canvas-model");
    select.replaceChildren(...(mode ? mode.choices : []).map((c, i) => new Option(c.label, String(i))));
    this.choiceChanged();
  }

  choiceChanged() {
    const choice = this.choice;
    if (!choice) { this.form.render(null); return; }
    $("canvas-notice").textContent = choice.notice;
    this.form.render(choice.spec);
    const image = choice.inputs.find((i) => i.kind === "image");
    const mask = choice.inputs.find((i) => i.kind === "mask");
    $("canvas-upload-label").hidden = !image;
    $("canvas-mask-tools").hidden = !mask;
    this.mask.classList.toggle("off", !mask);
  }

  // -- the picture and the mask ---------------------------------------------------------

  async upload(file) {
    if (!file) return;
    if (!this.capabilities) { this.status("Not connected to the server yet.", true); return; }
    let bitmap;
    try {
      bitmap = await createImageBitmap(file);
    } catch {
      this.status("That file is not a picture this browser can read; choose a PNG, JPEG or WebP.", true);
      return;
    }
    const limits = this.capabilities.limits;
    if (bitmap.width * bitmap.height > limits.max_pixels || Math.max(bitmap.width, bitmap.height) > limits.max_side) {
      this.status(`The picture is ${bitmap.width}x${bitmap.height}; this server takes at most ${limits.max_pixels} pixels and ${limits.max_side} per side.`, true);
      return;
    }
    this.setPicture(bitmap);
    this.status(`Picture ${bitmap.width}x${bitmap.height}.`);
  }

  setPicture(source) {
    this.picture.width = this.mask.width = source.width;
    this.picture.height = this.mask.height = source.height;
    this.picture.getContext("2d").drawImage(source, 0, 0);
    this.hasPicture = true;
  }

  clearMask() {
    this.mask.getContext("2d").clearRect(0, 0, this.mask.width, this.mask.height);
  }

  paintMask() {
    let last = null;
    const point = (e) => {
      const box = this.mask.getBoundingClientRect();
      return [(e.clientX - box.left) * (this.mask.width / box.width), (e.clientY - box.top) * (this.mask.height / box.height)];
    };
    const stroke = (from, to) => {
      const ctx = this.mask.getContext("2d");
      const box = this.mask.getBoundingClientRect();
      ctx.strokeStyle = "rgb(255, 40, 40)";
      ctx.lineCap = ctx.lineJoin = "round";
      ctx.lineWidth = parseInt($("canvas-brush").value, 10) * (this.mask.width / box.width);
      ctx.beginPath();
      ctx.moveTo(...from);
      ctx.lineTo(...to);
      ctx.stroke();
    };
    this.mask.addEventListener("pointerdown", (e) => {
      this.mask.setPointerCapture(e.pointerId);
      last = point(e);
      stroke(last, last);
    });
    this.mask.addEventListener("pointermove", (e) => {
      if (!last) return;
      const next = point(e);
      stroke(last, next);
      last = next;
    });
    const end = () => { last = null; };
    this.mask.addEventListener("pointerup", end);
    this.mask.addEventListener("pointercancel", end);
  }

  pixels(canvas) {
    return canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  }

  // The mask as l8: the painted strokes' alpha (255 inside a stroke, soft at its edge).
  maskPayload() {
    const rgba = this.pixels(this.mask);
    const l8 = new Uint8Array(rgba.length / 4);
    let any = false;
    for (let i = 0; i < l8.length; i++) {
      l8[i] = rgba[i * 4 + 3];
      any ||= l8[i] !== 0;
    }
    return any ? { width: this.mask.width, height: this.mask.height, format: "l8", encoding: "raw", data: l8 } : null;
  }

  // -- running --------------------------------------------------------------------------

  status(text, error = false) {
    const p = $("canvas-status");
    p.textContent = text;
    p.className = error ? "error" : "muted";
  }

  buildJob() {
    if (!this.wire.connected) throw new Error("Not connected to the server: reload the page.");
    const choice = this.choice;
    if (!choice) throw new Error("Choose a mode.");
    if (choice.notice) throw new Error(choice.notice);
    const job = { engine: choice.engine, mode: this.mode.name, params: this.form.values(), output_format: "rgba8" };
    if (choice.model) job.model = choice.model;
    const image = choice.inputs.find((i) => i.kind === "image");
    const mask = choice.inputs.find((i) => i.kind === "mask");
    if (image && (image.required || this.hasPicture)) {
      if (!this.hasPicture) throw new Error("Choose a picture first.");
      const { width, height } = this.picture;
      job.image = { width, height, format: "rgba8", encoding: "raw", data: new Uint8Array(this.pixels(this.picture).buffer) };
      const limit = this.capabilities.limits.max_message_bytes;
      if (width * height * 5 + 65536 > limit) throw new Error(`The picture is too large for this server's messages (${limit} bytes); use a smaller one.`);
    }
    if (mask && job.image) {
      const payload = this.maskPayload();
      if (payload) job.mask = payload;
      else if (mask.required) throw new Error("Paint the mask over the picture first: where it is painted, the picture changes.");
    }
    return job;
  }

  run() {
    let job;
    try {
      job = this.buildJob();
    } catch (error) {
      this.status(error.message, true);
      return;
    }
    this.input = job.image ? this.snapshot() : null;
    this.placement = this.choice.spec.placement || "layers";
    $("canvas-run").disabled = true;
    $("canvas-cancel").disabled = false;
    $("canvas-progress").value = 0;
    this.status("Sending…");
    this.current = this.wire.submit(job, (event) => this.onEvent(event));
  }

  cancel() {
    if (this.current && this.current.id) this.wire.cancel(this.current.id);
    else if (this.current) this.cancelWhenQueued = true;
    $("canvas-cancel").disabled = true;
  }

  snapshot() {
    const copy = document.createElement("canvas");
    copy.width = this.picture.width;
    copy.height = this.picture.height;
    copy.getContext("2d").drawImage(this.picture, 0, 0);
    return copy;
  }

  onEvent(event) {
    document.body.dataset.jobEvent = event.type; // for the browser tests
    switch (event.type) {
      case "queued":
        if (this.cancelWhenQueued) { this.cancelWhenQueued = false; this.wire.cancel(event.job); }
        this.status(event.position ? `Queued: ${event.position} job(s) ahead.` : "Queued: runs next.");
        break;
      case "started":
        this.status("Running…");
        break;
      case "progress":
        $("canvas-progress").value = event.fraction ?? event.step / Math.max(1, event.total);
        this.status(`${event.stage || event.phase || "working"}: ${event.step} of ${event.total}`);
        break;
      case "preview":
        this.showPreview(event.image);
        break;
      case "result":
        this.showResult(event);
        $("canvas-progress").value = 1;
        this.status(`Done: ${event.layers.length} image(s), ${event.width}x${event.height}.`);
        break;
      case "cancelled":
        this.status("Cancelled.");
        break;
      case "error":
        this.status(`${event.message} (${event.code})`, true);
        break;
    }
    if (event.type === "result" || event.type === "cancelled" || event.type === "error") {
      this.current = null;
      this.cancelWhenQueued = false;
      $("canvas-run").disabled = false;
      $("canvas-cancel").disabled = true;
      document.body.dataset.lastJob = event.type; // for the browser tests
    }
  }

  imageData(image) {
    const data = new Uint8ClampedArray(image.data.buffer, image.data.byteOffset, image.data.byteLength);
    return new ImageData(data, image.width, image.height);
  }

  toCanvas(image) {
    const canvas = document.createElement("canvas");
    canvas.width = image.width;
    canvas.height = image.height;
    canvas.getContext("2d").putImageData(this.imageData(image), 0, 0);
    return canvas;
  }

  showPreview(image) {
    const preview = $("canvas-preview");
    preview.width = image.width;
    preview.height = image.height;
    preview.getContext("2d").drawImage(this.toCanvas(image), 0, 0);
  }

  // The layers over the unchanged input, as docs/protocol.md section 9 says, by the
  // server's own rule (compositing.js); the result becomes the picture for the next job.
  showResult(result) {
    const canvas = document.createElement("canvas");
    canvas.width = result.width;
    canvas.height = result.height;
    const ctx = canvas.getContext("2d");
    const picture = ctx.createImageData(result.width, result.height);
    if (this.input && (this.placement === "layers" || this.placement === "grow")) {
      const input = this.input.getContext("2d").getImageData(0, 0, this.input.width, this.input.height);
      placeOver(picture, input, result.offset_x || 0, result.offset_y || 0);
    }
    for (const layer of result.layers) placeOver(picture, this.imageData(layer.image), layer.x, layer.y);
    ctx.putImageData(picture, 0, 0);
    this.setPicture(canvas);
    this.clearMask();
    canvas.toBlob((blob) => {
      const link = $("canvas-download");
      if (link.href) URL.revokeObjectURL(link.href);
      link.href = URL.createObjectURL(blob);
      link.hidden = false;
    });
  }
}
