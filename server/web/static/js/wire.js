// The page's websocket client: the documented protocol (docs/protocol.md), one
// binary msgpack map per frame, with the vendored @msgpack/msgpack build.

const { encode, decode } = window.MessagePack;
export const PROTOCOL = 1;
export const CLIENT_NAME = "paintwire-web/0.1.0";
const FINAL = new Set(["result", "error", "cancelled"]);

// One submitted job: its events go to onEvent; `done` settles with the final event.
class JobHandle {
  constructor(ref, onEvent) {
    this.ref = ref;
    this.id = null;
    this.onEvent = onEvent;
    this.done = new Promise((resolve) => { this._resolve = resolve; });
  }
  _deliver(message) {
    this.onEvent(message);
    if (FINAL.has(message.type)) this._resolve(message);
  }
}

export class WireClient extends EventTarget {
  constructor(url) {
    super();
    this.url = url;
    this.ws = null;
    this.capabilities = null;
    this.nextRef = 1;
    this.pending = new Map(); // ref -> handle, until the job has an id
    this.jobs = new Map(); // job id -> handle, until its final event
  }

  // Opens the connection and says hello; resolves with the capabilities, or
  // rejects with the server's sentence (a wrong token, an old server).
  connect(token) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.url);
      ws.binaryType = "arraybuffer";
      this.ws = ws;
      let welcomed = false;
      ws.onopen = () => ws.send(encode({ type: "hello", protocol: PROTOCOL, client: CLIENT_NAME, token: token || null, updates: true }));
      ws.onmessage = (event) => {
        const message = decode(new Uint8Array(event.data));
        if (!welcomed) {
          if (message.type === "welcome" && message.protocol === PROTOCOL) {
            welcomed = true;
            this.capabilities = message.capabilities;
            resolve(message.capabilities);
          } else if (message.type === "error") {
            reject(Object.assign(new Error(message.message), { code: message.code }));
          }
          return;
        }
        this._receive(message);
      };
      ws.onclose = (event) => {
        if (!welcomed) reject(new Error(`The server closed the connection (${event.code}).`));
        for (const handle of [...this.pending.values(), ...this.jobs.values()]) {
          handle._deliver({ type: "error", code: "internal", message: "The connection to the server closed.", job: handle.id });
        }
        this.pending.clear();
        this.jobs.clear();
        if (welcomed) this.dispatchEvent(new CustomEvent("closed", { detail: event.code }));
      };
    });
  }

  get connected() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN && this.capabilities !== null;
  }

  submit(job, onEvent) {
    const handle = new JobHandle(this.nextRef++, onEvent);
    this.pending.set(handle.ref, handle);
    this.ws.send(encode({ type: "submit", ref: handle.ref, job }));
    return handle;
  }

  cancel(jobId) {
    this.ws.send(encode({ type: "cancel", job: jobId }));
  }

  rescan() {
    this.ws.send(encode({ type: "rescan" }));
  }

  owns(jobId) {
    return this.jobs.has(jobId);
  }

  _receive(message) {
    if (message.type === "capabilities") {
      this.capabilities = message.capabilities;
      this.dispatchEvent(new CustomEvent("capabilities", { detail: message.capabilities }));
      return;
    }
    if (message.type === "queued" && this.pending.has(message.ref)) {
      const handle = this.pending.get(message.ref);
      this.pending.delete(message.ref);
      handle.id = message.job;
      this.jobs.set(message.job, handle);
    }
    if (message.type === "error" && message.job == null) {
      const handle = message.ref == null ? null : this.pending.get(message.ref);
      if (handle) {
        this.pending.delete(message.ref); // the submit was refused: no job exists
        handle._deliver(message);
      } else {
        this.dispatchEvent(new CustomEvent("notice", { detail: message }));
      }
      return;
    }
    const handle = this.jobs.get(message.job);
    if (!handle) return;
    if (FINAL.has(message.type)) this.jobs.delete(message.job);
    handle._deliver(message);
  }
}
