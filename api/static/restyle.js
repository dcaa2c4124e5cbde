// Restyle's HTTP API from the browser with nothing but fetch: the page uses it, and a web app may too.
// Every call sends the API key (when one is given) as `Authorization: Bearer …`; every error answer
// becomes an ApiError carrying the service's own message from its problem JSON.

export const FINAL_STATUSES = new Set(["succeeded", "failed", "canceled"]);

/** An error answer from the API; `message` is the service's explanation, `status` the HTTP status. */
export class ApiError extends Error {
  constructor(status, message, problem = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = problem.code ?? null;
    this.problem = problem;
  }
}

async function errorFrom(response) {
  let problem = {};
  try {
    problem = await response.json();
  } catch {
    // Not JSON (a proxy's HTML page, say): the status line is all we have.
  }
  const detail = typeof problem.detail === "string" ? problem.detail : null;
  return new ApiError(response.status, detail || problem.title || `${response.status} ${response.statusText}`, problem);
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
  });
}

/** Split a text/event-stream body into events; `onEvent(name, data)` is called for each. */
async function readEventStream(body, onEvent) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer = (buffer + value).replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) continue; // keep-alive comment
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") name = text;
        else if (field === "data") data.push(text);
      }
      if (data.length) onEvent(name, data.join("\n"));
    }
  }
}

/**
 * A client for one Restyle service. `baseUrl` defaults to the page's own origin and path;
 * `apiKey` (or a function returning it, so a settings field can change it) is optional.
 */
export function createClient({ baseUrl = new URL(".", location.href).href, apiKey = null } = {}) {
  const base = baseUrl.endsWith("/") ? baseUrl : `${baseUrl}/`;
  const key = () => (typeof apiKey === "function" ? apiKey() : apiKey) || null;
  const url = (path) => new URL(path, base).href;
  const headers = (extra = {}) => (key() ? { ...extra, Authorization: `Bearer ${key()}` } : extra);

  async function call(path, init = {}) {
    const response = await fetch(url(path), { ...init, headers: headers(init.headers) });
    if (!response.ok) throw await errorFrom(response);
    return response;
  }

  const client = {
    /** POST /v1/jobs with a FormData holding `content`, one to four `style` files and any parameters. */
    async submit(form) {
      return (await call("v1/jobs", { method: "POST", body: form })).json();
    },

    async get(id) {
      return (await call(`v1/jobs/${encodeURIComponent(id)}`)).json();
    },

    async cancel(id) {
      return (await call(`v1/jobs/${encodeURIComponent(id)}/cancel`, { method: "POST" })).json();
    },

    /** The finished image as a Blob (an <img> cannot send the API key, so images are fetched). */
    async result(id) {
      return (await call(`v1/jobs/${encodeURIComponent(id)}/result`)).blob();
    },

    /** The newest in-progress snapshot as a Blob, or null while there is none yet. */
    async preview(id) {
      const response = await fetch(url(`v1/jobs/${encodeURIComponent(id)}/preview`), {
        headers: headers(),
        cache: "no-store",
      });
      if (response.status === 404) return null;
      if (!response.ok) throw await errorFrom(response);
      return response.blob();
    },

    /**
     * GET /readyz: whether the service can take jobs, the VGG19 weights its workers run (`weights`) and,
     * while any of them are untrained, what that means (`weights_notice`). A 503 is returned too, not
     * thrown: its body is the problem naming what is missing, which may carry those fields as well.
     */
    async readiness() {
      const response = await fetch(url("readyz"), { headers: headers(), cache: "no-store" });
      if (!response.ok && response.status !== 503) throw await errorFrom(response);
      return response.json();
    },

    /** The API's OpenAPI document; the page reads the engine's parameters (defaults, ranges) from it. */
    async openapi() {
      return (await call("openapi.json")).json();
    },

    /**
     * Follow a job until it is finished: `onJob(job)` is called with every new state.
     * Without an API key this uses EventSource on /v1/jobs/{id}/events. EventSource cannot send an
     * Authorization header, so with a key the same stream is read through fetch. If the stream is
     * unavailable or breaks off, it falls back to polling GET /v1/jobs/{id} once a second.
     * `onMode` hears which of "event stream", "fetch stream" or "polling" is in use.
     * Returns a function that stops following.
     */
    watch(id, onJob, { onMode = () => {}, onError = () => {} } = {}) {
      const stopper = new AbortController();
      const { signal } = stopper;
      let source = null;

      const stop = () => {
        stopper.abort();
        source?.close();
      };
      const deliver = (job) => {
        if (signal.aborted) return;
        onJob(job);
        if (FINAL_STATUSES.has(job.status)) stop();
      };
      const fromEvent = (data) => {
        const job = JSON.parse(data);
        if (job && job.id && job.status) deliver(job);
      };
      const poll = async () => {
        onMode("polling");
        while (!signal.aborted) {
          try {
            deliver(await client.get(id));
          } catch (error) {
            onError(error);
            if (error instanceof ApiError && error.status < 500) return stop();
          }
          await sleep(1000, signal);
        }
      };

      if (!key() && "EventSource" in window) {
        onMode("event stream");
        source = new EventSource(url(`v1/jobs/${encodeURIComponent(id)}/events`));
        source.addEventListener("job", (event) => fromEvent(event.data));
        // After "end" the server closes the stream; close too, or EventSource would reconnect.
        source.addEventListener("end", () => source.close());
        source.onerror = () => {
          source.close();
          if (!signal.aborted) poll();
        };
      } else {
        onMode("fetch stream");
        fetch(url(`v1/jobs/${encodeURIComponent(id)}/events`), {
          headers: headers({ Accept: "text/event-stream" }),
          signal,
        })
          .then(async (response) => {
            if (!response.ok || !response.body) throw await errorFrom(response);
            await readEventStream(response.body, (name, data) => {
              if (name === "job") fromEvent(data);
            });
          })
          .catch(() => {})
          .then(() => {
            if (!signal.aborted) poll();
          });
      }
      return stop;
    },
  };
  return client;
}
