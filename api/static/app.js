// The Restyle page: pick a photo (or a clip) and paintings, run a job, watch it paint, keep the result.
// The engine's parameters (names, defaults, ranges, help) come from the API's OpenAPI document, which
// the service derives from its one parameter model, so this page never restates them.

import { createRegions } from "./regions.js";
import { ApiError, FINAL_STATUSES, createClient } from "./restyle.js";

const $ = (id) => document.getElementById(id);
const KEY_STORAGE = "restyle.apiKey";
const RECENT_STORAGE = "restyle.recentJobs";
const RECENT_LIMIT = 12;
const MAX_PAINTINGS = 4; // the picker's limit; the service enforces the real one with a clear message
// Offered as far as the API's documented maximum for `size` (this server's RESTYLE_MAX_SIZE).
const SIZE_PRESETS = [256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096];
const PREVIEW_REFRESH_MS = 1500;
const FRAME_WAIT_MS = 5000; // a video the browser cannot decode may never say so
// How the OpenAPI document marks the fields only a clip's job takes; the service refuses them with a photo.
const CLIP_ONLY = "Only with `clip`. ";

const api = createClient({ apiKey: () => localStorage.getItem(KEY_STORAGE) });
const regions = createRegions({ onProblem: showProblem });

const state = {
  content: null, // {file, url, clip}: clip when it is sent as a video
  picking: 0, // counts the photos and clips chosen, so only the newest is kept when telling one takes a while
  styles: [], // [{file, url}]
  fields: new Map(), // parameter name -> {input, defaultText, property, clipOnly}
  styleWeight: null, // {default, min, max} from the schema
  job: null,
  stopWatching: null,
  shown: null, // {content, styles, original}: thumbnails of the inputs of the job on screen, a clip's {url, type}
  preview: { url: null, busy: false, at: 0, iteration: null },
  resultUrl: null,
};

// ---------------------------------------------------------------------------------------------------------
// Small helpers

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value == null) continue;
    if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  node.append(...children);
  return node;
}

function formatNumber(value) {
  if (value == null || Number.isNaN(value)) return "–";
  const abs = Math.abs(value);
  if (abs !== 0 && (abs >= 1e5 || abs < 1e-3)) return value.toExponential(2);
  return Number(value.toPrecision(4)).toLocaleString("en");
}

function formatSeconds(seconds) {
  if (seconds == null) return "–";
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
}

function formatWhen(iso) {
  const minutes = Math.round((Date.now() - new Date(iso).getTime()) / 60000);
  if (minutes < 1) return "just now";
  if (minutes < 60) return `${minutes} min ago`;
  if (minutes < 24 * 60) return `${Math.round(minutes / 60)} h ago`;
  return new Date(iso).toLocaleDateString();
}

function paramText(value) {
  if (value == null) return "";
  if (Array.isArray(value)) return value.join(",");
  if (typeof value === "object") return Object.entries(value).map(([k, v]) => `${k}:${v}`).join(",");
  return String(value);
}

function roundSignificant(value, digits = 2) {
  return value === 0 ? 0 : Number(value.toPrecision(digits));
}

/** A <video> of `url` that plays by itself, muted, in a loop. */
function clipVideo(url, attributes = {}) {
  const video = el("video", { src: url, autoplay: true, loop: true, playsinline: true, ...attributes });
  // The property, not the attribute: a video made by script is not muted by the attribute, and only a muted
  // video may start playing on its own.
  video.muted = true;
  return video;
}

/** A chosen file as shown: a video plays; anything else is an <img>, in which a GIF clip moves by itself. */
function shownFile(url, type, label, attributes = {}) {
  return type.startsWith("video/")
    ? clipVideo(url, { "aria-label": label, ...attributes })
    : el("img", { src: url, alt: label, ...attributes });
}

/** The first frame of a video Blob, once the browser has decoded it. */
async function firstFrame(blob) {
  const url = URL.createObjectURL(blob);
  const video = el("video", { src: url, preload: "auto" });
  video.muted = true;
  try {
    await new Promise((resolve, reject) => {
      video.addEventListener("loadeddata", resolve, { once: true });
      video.addEventListener("error", reject, { once: true });
      setTimeout(() => reject(new Error("the video did not load")), FRAME_WAIT_MS);
    });
    return await createImageBitmap(video);
  } finally {
    URL.revokeObjectURL(url);
  }
}

/** A small JPEG data URL of an image (or a video's first frame) for the recent-jobs list, or null if the
 * browser cannot show it. */
async function thumbnail(blob, side = 160) {
  try {
    const bitmap = blob.type.startsWith("video/") ? await firstFrame(blob) : await createImageBitmap(blob);
    const scale = Math.min(1, side / Math.max(bitmap.width, bitmap.height));
    const canvas = el("canvas", {
      width: Math.max(1, Math.round(bitmap.width * scale)),
      height: Math.max(1, Math.round(bitmap.height * scale)),
    });
    canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    bitmap.close();
    return canvas.toDataURL("image/jpeg", 0.8);
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Messages

function showProblem(title, message, kind = "error") {
  const box = $("problem");
  box.className = `problem ${kind}`;
  box.replaceChildren(el("strong", { text: title }), " ", el("span", { text: message }));
  box.hidden = false;
  box.scrollIntoView({ block: "nearest", behavior: "smooth" });
}

function clearProblem() {
  $("problem").hidden = true;
}

function explain(error) {
  if (error instanceof ApiError) {
    if (error.status === 401 || error.status === 403) {
      $("key-settings").open = true;
      $("api-key").focus();
      return `Enter a valid key under “API key” at the top. (The server said: ${error.message}.)`;
    }
    return error.message;
  }
  return `The server could not be reached (${error.message}).`;
}

/** Text from the server with its `backticked` spans as <code>, built as nodes (never parsed as HTML). */
function withCode(text) {
  return text.split("`").map((part, index) => (index % 2 ? el("code", { text: part }) : part));
}

// ---------------------------------------------------------------------------------------------------------
// The service's network weights: a banner while its workers run untrained ones, in the server's own words

async function checkWeights() {
  let ready;
  try {
    ready = await api.readiness();
  } catch {
    return; // the server is unreachable or not answering JSON; the form's own calls say so when it matters
  }
  // Not ready (no worker yet, the storage down) may mean no weights are known: keep what was last learnt.
  if (!("weights_notice" in ready)) return;
  const notice = $("weights-notice");
  notice.replaceChildren(...withCode(ready.weights_notice ?? ""));
  notice.hidden = !ready.weights_notice;
  $("service-weights").textContent = ready.weights?.length ? ` · weights ${ready.weights.join(", ")}` : "";
}

// ---------------------------------------------------------------------------------------------------------
// Picking images and clips

function renderPicked() {
  const tile = (picked, remove) => {
    const picture = shownFile(picked.url, picked.file.type, picked.file.name);
    const fallback = el("span", { class: "thumb-fallback", text: picked.file.name, hidden: true });
    picture.addEventListener("error", () => {
      picture.hidden = true;
      fallback.hidden = false;
    });
    return el(
      "li",
      { class: "thumb", title: picked.file.name },
      picture,
      fallback,
      el("button", { type: "button", class: "remove", "aria-label": `Remove ${picked.file.name}`, onclick: remove }, "×"),
    );
  };
  $("content-thumbs").replaceChildren(
    ...(state.content ? [tile(state.content, () => pickContent(null))] : []),
  );
  $("style-thumbs").replaceChildren(
    ...state.styles.map((picked, index) =>
      tile(picked, () => {
        URL.revokeObjectURL(picked.url);
        state.styles.splice(index, 1);
        renderPicked();
      }),
    ),
  );
  regions.setPaintings(state.styles);
  $("content-drop").classList.toggle("filled", Boolean(state.content));
  $("style-drop").classList.toggle("filled", state.styles.length >= MAX_PAINTINGS);
}

/** Whether a chosen file is a clip: a video, or an animated GIF (a still GIF stays a photo, as before clips). */
async function isClip(file) {
  if (file.type.startsWith("video/")) return true;
  if (file.type !== "image/gif" || !("ImageDecoder" in window)) return false;
  try {
    const decoder = new ImageDecoder({ data: await file.arrayBuffer(), type: file.type });
    await decoder.tracks.ready;
    // Frames, not `animated`, which Chromium reports for every GIF.
    const frames = decoder.tracks.selectedTrack?.frameCount ?? 1;
    decoder.close();
    return frames > 1;
  } catch {
    return false; // sent as a photo, and the service says what is wrong with it
  }
}

async function pickContent(file) {
  const picking = ++state.picking;
  const clip = Boolean(file) && (await isClip(file));
  if (picking !== state.picking) return;
  if (state.content) URL.revokeObjectURL(state.content.url);
  state.content = file ? { file, url: URL.createObjectURL(file), clip } : null;
  // Regions are painted over a photo; a clip's frames move under them.
  regions.setPhoto(clip ? null : state.content);
  $("clip-options").hidden = !clip;
  renderPicked();
}

function pickStyles(files) {
  const room = MAX_PAINTINGS - state.styles.length;
  for (const file of [...files].slice(0, Math.max(room, 0))) {
    state.styles.push({ file, url: URL.createObjectURL(file) });
  }
  if (files.length > room) {
    showProblem("Up to four paintings.", `${files.length - Math.max(room, 0)} file(s) were left out.`, "notice");
  }
  renderPicked();
}

function wirePicker(zoneId, inputId, onFiles) {
  const zone = $(zoneId);
  const input = $(inputId);
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    input.dispatchEvent(new Event("change"));
  });
  input.addEventListener("change", () => {
    if (input.files.length) onFiles(input.files);
    input.value = ""; // so picking the same file again still fires "change"
  });
  for (const type of ["dragenter", "dragover"]) {
    zone.addEventListener(type, (event) => {
      event.preventDefault();
      zone.classList.add("dragging");
    });
  }
  for (const type of ["dragleave", "drop"]) {
    zone.addEventListener(type, () => zone.classList.remove("dragging"));
  }
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    if (event.dataTransfer?.files.length) onFiles(event.dataTransfer.files);
  });
}

// ---------------------------------------------------------------------------------------------------------
// Parameters, from the OpenAPI document

/** The engine's parameters as POST /v1/jobs declares its form fields (files and the webhook left out). */
function formParameters(openapi) {
  const body = openapi.paths?.["/v1/jobs"]?.post?.requestBody?.content?.["multipart/form-data"]?.schema;
  const isFile = (property) => property.format === "binary" || property.items?.format === "binary";
  const entries = Object.entries(body?.properties ?? {}).filter(
    ([name, property]) => !isFile(property) && name !== "webhook_url",
  );
  return entries.length ? Object.fromEntries(entries) : null;
}

function fieldFor(name, property) {
  const main = property.anyOf?.find((branch) => branch.type !== "null") ?? property;
  const id = `param-${name}`;
  const defaultText = paramText(property.default);
  const clipOnly = property.description?.startsWith(CLIP_ONLY) ?? false;
  // A clip's own fields are shown under "Clip", which says that already.
  const description = clipOnly ? property.description.slice(CLIP_ONLY.length) : property.description ?? "";
  let input;
  if (main.enum) {
    input = el("select", { id, name }, ...main.enum.map((choice) => el("option", { value: choice, text: choice })));
    input.value = defaultText;
  } else if (main.type === "boolean" && property.default === undefined) {
    // No default: the service decides when the field is left out (multiscale: on for large pictures).
    input = el(
      "select",
      { id, name },
      el("option", { value: "", text: "automatic" }),
      el("option", { value: "true", text: "on" }),
      el("option", { value: "false", text: "off" }),
    );
  } else if (main.type === "boolean") {
    input = el("input", { id, name, type: "checkbox" });
    input.checked = property.default === true;
  } else if (main.type === "integer" || main.type === "number") {
    input = el("input", {
      id,
      name,
      type: "number",
      inputmode: "decimal",
      min: main.minimum ?? main.exclusiveMinimum,
      max: main.maximum ?? main.exclusiveMaximum,
      step: main.type === "integer" ? 1 : "any",
      value: defaultText,
    });
  } else {
    input = el("input", {
      id,
      name,
      type: "text",
      spellcheck: "false",
      value: defaultText,
      // Mappings and lists have no single default in the schema; left empty, the service's default applies.
      placeholder: property.example ?? "default",
    });
  }
  input.setAttribute("aria-describedby", `${id}-hint`);
  const wrapper = el(
    "div",
    { class: `param${input.type === "checkbox" ? " checkbox" : ""}` },
    el("label", { for: id }, el("code", { text: name })),
    input,
    el("small", { id: `${id}-hint`, class: "hint", text: description }),
  );
  state.fields.set(name, { input, defaultText, property: main, clipOnly });
  return wrapper;
}

function fieldValue(name) {
  const { input } = state.fields.get(name);
  return input.type === "checkbox" ? String(input.checked) : input.value.trim();
}

function setField(name, value) {
  const field = state.fields.get(name);
  if (!field) return;
  if (field.input.type === "checkbox") field.input.checked = value === true || value === "true";
  else field.input.value = paramText(value);
}

/** The parameters that differ from the service's defaults, a clip's own only for a clip; the job record shows
 * all of them, filled in. */
function changedParams(clip) {
  const changed = [];
  for (const [name, { defaultText, clipOnly }] of state.fields) {
    if (clipOnly && !clip) continue;
    const value = fieldValue(name);
    if (value !== "" && value !== defaultText) changed.push([name, value]);
  }
  return changed;
}

// The strength slider moves style_weight over four decades around its default, on a log scale.
function weightFromSlider(position) {
  const { default: middle, min, max } = state.styleWeight;
  const weight = roundSignificant(middle * 10 ** ((position - 50) / 25));
  return Math.min(Math.max(weight, min), max);
}

function sliderFromWeight(weight) {
  const { default: middle } = state.styleWeight;
  if (!(weight > 0)) return 0;
  return Math.min(Math.max(50 + 25 * Math.log10(weight / middle), 0), 100);
}

function describeStrength() {
  const position = Number($("strength").value);
  const words = ["very subtle", "subtle", "balanced", "strong", "very strong"];
  const word = words[Math.min(Math.floor(position / 20.0001), 4)];
  $("strength-value").textContent = `${word} · style_weight ${formatNumber(Number(fieldValue("style_weight")))}`;
}

function syncSizePreset() {
  const select = $("size-preset");
  const size = Number(fieldValue("size"));
  select.querySelector("option[data-custom]")?.remove();
  if (![...select.options].some((option) => Number(option.value) === size)) {
    select.append(el("option", { value: size, "data-custom": true, text: `${size} px (custom)` }));
  }
  select.value = String(size);
}

// A browser that cannot play H.264 could not show an MP4 result beside its clip, so it asks for WebM.
function preferPlayableClipFormat() {
  const format = state.fields.get("clip_format");
  const playsMp4 = document.createElement("video").canPlayType('video/mp4; codecs="avc1.42E01E"') !== "";
  if (format && !playsMp4 && format.property.enum?.includes("webm")) setField("clip_format", "webm");
}

function buildParameters(properties) {
  for (const [name, property] of Object.entries(properties)) {
    const field = fieldFor(name, property);
    $(state.fields.get(name).clipOnly ? "clip-params" : "params").append(field);
  }
  preferPlayableClipFormat();

  const weight = state.fields.get("style_weight");
  state.styleWeight = {
    default: Number(weight.defaultText),
    min: Math.max(weight.property.minimum ?? 0, 1e-9),
    max: weight.property.maximum ?? Infinity,
  };
  $("strength").addEventListener("input", () => {
    setField("style_weight", weightFromSlider(Number($("strength").value)));
    describeStrength();
  });
  weight.input.addEventListener("input", () => {
    $("strength").value = sliderFromWeight(Number(weight.input.value));
    describeStrength();
  });
  describeStrength();

  const size = state.fields.get("size");
  const sizeDefault = Number(size.defaultText);
  const select = $("size-preset");
  select.replaceChildren(
    ...SIZE_PRESETS.filter((px) => px >= (size.property.minimum ?? 0) && px <= (size.property.maximum ?? Infinity)).map(
      (px) => el("option", { value: px, text: `${px} px${px === sizeDefault ? " (default)" : ""}` }),
    ),
  );
  select.addEventListener("change", () => setField("size", select.value));
  size.input.addEventListener("input", syncSizePreset);
  syncSizePreset();
}

async function loadParameters() {
  try {
    const properties = formParameters(await api.openapi());
    if (!properties) throw new Error("the API does not describe its parameters");
    buildParameters(properties);
  } catch (error) {
    $("strength").disabled = true;
    $("size-preset").disabled = true;
    $("params").replaceChildren(el("p", { class: "hint", text: `Parameters unavailable: ${error.message}. Defaults apply.` }));
  }
}

// ---------------------------------------------------------------------------------------------------------
// Running a job

function renderLosses(losses) {
  const names = ["content", "style", "tv", "total"].filter((name) => name in losses);
  $("losses").replaceChildren(
    ...names.flatMap((name) => [el("dt", { text: name }), el("dd", { text: formatNumber(losses[name]) })]),
  );
}

function renderProgress(job) {
  const { iteration, total, percent, stage, stages, size, frame, frames } = job.progress;
  const remaining = job.progress.remaining_seconds;
  $("progress").value = percent;
  $("progress").max = 100;
  let text = "Waiting in the queue…";
  if (job.status === "running") {
    text = iteration ? `Iteration ${iteration} of ${total} · ${Math.round(percent)}%` : "Starting the engine…";
    if (iteration && frames) text += ` · frame ${frame} of ${frames}`;
    if (iteration && stages > 1) text += ` · stage ${stage} of ${stages} at ${size} px`;
    if (iteration && remaining != null) text += ` · about ${formatSeconds(remaining)} left`;
    if (job.cancel_requested) text = `Stopping… (iteration ${iteration} of ${total})`;
  }
  $("progress-text").textContent = text;
  $("run-title").textContent = job.status === "queued" ? "Queued" : "Painting…";
  renderLosses(job.losses ?? {});
}

async function refreshPreview(job) {
  const preview = state.preview;
  const fresh = job.preview_iteration == null
    ? Date.now() - preview.at >= PREVIEW_REFRESH_MS
    : job.preview_iteration !== preview.iteration;
  if (!job.preview_url || preview.busy || !fresh) return;
  preview.busy = true;
  preview.at = Date.now();
  try {
    const blob = await api.preview(job.id);
    if (blob && state.job?.id === job.id) {
      if (preview.url) URL.revokeObjectURL(preview.url);
      preview.url = URL.createObjectURL(blob);
      preview.iteration = job.preview_iteration ?? null;
      $("preview").src = preview.url;
      $("preview").hidden = false;
      $("preview-caption").textContent = "Live preview";
    }
  } catch {
    // A missed preview is cosmetic; the next change of the job tries again.
  } finally {
    preview.busy = false;
  }
}

function resetRun() {
  state.stopWatching?.();
  state.stopWatching = null;
  if (state.preview.url) URL.revokeObjectURL(state.preview.url);
  state.preview = { url: null, busy: false, at: 0, iteration: null };
  $("preview").hidden = true;
  $("preview").removeAttribute("src");
  $("preview-caption").textContent = "The preview appears after the first snapshot.";
  $("losses").replaceChildren();
  for (const video of $("done").querySelectorAll("video")) video.pause(); // hidden, they would play on
  $("done").hidden = true;
  $("run").hidden = true;
}

function track(job) {
  resetRun();
  state.job = job;
  $("run").hidden = false;
  $("cancel").disabled = false;
  $("go").disabled = true;
  onJob(job);
  if (FINAL_STATUSES.has(job.status)) return;
  state.stopWatching = api.watch(job.id, onJob, {
    onMode: (mode) => {
      $("run-mode").textContent = `Updates arrive by ${mode}.`;
    },
    onError: (error) => showProblem("Lost track of the job.", explain(error)),
  });
}

function onJob(job) {
  if (state.job?.id !== job.id) return;
  state.job = job;
  rememberJob(job);
  if (!FINAL_STATUSES.has(job.status)) {
    renderProgress(job);
    refreshPreview(job);
    return;
  }
  $("go").disabled = false;
  $("run").hidden = true;
  checkWeights(); // the weights matter most next to a finished picture, and a restart may have changed them
  if (job.status === "succeeded") showResult(job);
  else if (job.status === "failed") showProblem("The job failed.", job.error?.message ?? "No reason was given.");
  else showProblem("Canceled.", "The job was stopped before it finished.", "notice");
}

async function submit(event) {
  event.preventDefault();
  clearProblem();
  if (!state.content) {
    return showProblem("Choose a photo or a clip first.", "Drop it on the “Photo or clip” box or pick a file.");
  }
  if (!state.styles.length) return showProblem("Choose a painting.", "Add one to four paintings to take the style from.");
  const { file, clip } = state.content;
  const form = new FormData();
  form.append(clip ? "clip" : "content", file, file.name);
  for (const painting of state.styles) form.append("style", painting.file, painting.file.name);
  for (const [name, value] of changedParams(clip)) form.append(name, value);

  const button = $("go");
  button.disabled = true;
  button.textContent = "Starting…";
  let job;
  try {
    for (const [name, blob, filename] of await regions.maskFields()) form.append(name, blob, filename);
    job = await api.submit(form);
  } catch (error) {
    button.disabled = false;
    showProblem("The job could not start.", explain(error));
    return;
  } finally {
    button.textContent = "Restyle";
  }
  // The photo is remembered with its regions over it, so the inputs beside the result show where each went.
  const photo = (await regions.picture()) ?? file;
  const [content, ...styles] = await Promise.all(
    [photo, ...state.styles.map((painting) => painting.file)].map((blob) => thumbnail(blob, 240)),
  );
  // A clip plays beside its result from a URL of its own, which a newly chosen file does not take away.
  showInputs({ content, styles, original: clip ? { url: URL.createObjectURL(file), type: file.type } : null });
  rememberJob(job, { content, styles });
  track(job);
}

function showInputs(shown) {
  if (state.shown?.original) URL.revokeObjectURL(state.shown.original.url);
  state.shown = shown;
}

async function cancel() {
  if (!state.job) return;
  $("cancel").disabled = true;
  try {
    onJob(await api.cancel(state.job.id));
  } catch (error) {
    $("cancel").disabled = false;
    showProblem("Could not cancel.", explain(error));
  }
}

// ---------------------------------------------------------------------------------------------------------
// Showing a result

function usedParameters(job) {
  const keys = ["style_weight", "content_weight", "tv_weight", "style_blend", "iterations", "size", "optimizer", "seed"];
  const rows = [["network weights", job.weights ?? "–"]];
  for (const key of keys) {
    if (key in job.params && job.params[key] != null) rows.push([key, paramText(job.params[key])]);
  }
  for (const [key, value] of Object.entries(job.clip ?? {})) {
    if (value != null) rows.push([key, paramText(value)]);
  }
  return rows;
}

/** Show the result in the <img>, or a clip's in the <video>, and empty the other, so no hidden video plays on. */
function showResultIn(url, clip) {
  const [shown, other] = clip ? [$("result-video"), $("result")] : [$("result"), $("result-video")];
  other.hidden = true;
  other.removeAttribute("src");
  shown.src = url;
  shown.hidden = false;
}

function resultExtension(job) {
  if (job.clip) return job.clip.clip_format;
  return { jpeg: "jpg" }[job.params.output_format] ?? job.params.output_format ?? "png";
}

function renderInputs(job) {
  const inputs = state.shown ?? { content: null, styles: [], original: null };
  const photo = job.clip ? "clip" : "photo";
  const [content, ...paintings] = [inputs.content, ...inputs.styles].map((src, index) =>
    src
      ? el("img", { src, alt: index === 0 ? `The ${photo}` : `Painting ${index}`, class: index === 0 ? "photo" : "painting" })
      : el("span", { class: "thumb-fallback", text: index === 0 ? photo : `painting ${index}` }),
  );
  const original = inputs.original
    ? shownFile(inputs.original.url, inputs.original.type, "The clip", { class: "photo", controls: true })
    : content;
  $("done-inputs").replaceChildren(original, ...paintings);
}

async function showResult(job) {
  let blob;
  try {
    blob = await api.result(job.id);
  } catch (error) {
    showProblem("The result could not be downloaded.", explain(error));
    return;
  }
  if (state.job?.id !== job.id) return;
  if (state.resultUrl) URL.revokeObjectURL(state.resultUrl);
  state.resultUrl = URL.createObjectURL(blob);
  showResultIn(state.resultUrl, Boolean(job.clip));

  const download = $("download");
  download.href = state.resultUrl;
  download.download = `restyle-${job.id.slice(0, 8)}.${resultExtension(job)}`;

  renderInputs(job);
  const wall = (new Date(job.finished_at) - new Date(job.created_at)) / 1000;
  const frames = job.progress.frames ? `${job.progress.frames} frames, ` : "";
  $("done-summary").textContent = `Finished in ${formatSeconds(wall)}`
    + (job.run_seconds != null ? ` (${formatSeconds(job.run_seconds)} painting)` : "")
    + ` · ${frames}${job.progress.total} iterations at ${job.params.size} px.`;
  $("used").replaceChildren(
    ...usedParameters(job).flatMap(([name, value]) => [el("dt", { text: name }), el("dd", { text: value })]),
  );
  $("done").hidden = false;
  $("done").scrollIntoView({ block: "nearest", behavior: "smooth" });
  rememberJob(job, { result: await thumbnail(blob) });
}

// ---------------------------------------------------------------------------------------------------------
// Recent jobs, kept in this browser

function recentJobs() {
  try {
    return JSON.parse(localStorage.getItem(RECENT_STORAGE)) ?? [];
  } catch {
    return [];
  }
}

function saveRecent(entries) {
  // When the browser's storage is full, forget the oldest jobs until the list fits; the jobs themselves
  // live on the server, the list is only a convenience.
  for (let kept = Math.min(entries.length, RECENT_LIMIT); kept >= 0; kept -= 1) {
    try {
      localStorage.setItem(RECENT_STORAGE, JSON.stringify(entries.slice(0, kept)));
      break;
    } catch {
      continue;
    }
  }
  renderRecent();
}

function rememberJob(job, pictures = {}) {
  const entries = recentJobs();
  const existing = entries.find((entry) => entry.id === job.id);
  const entry = existing ?? { id: job.id, createdAt: job.created_at };
  const paintings = `${job.style_count} painting${job.style_count === 1 ? "" : "s"}`;
  Object.assign(entry, {
    status: job.status,
    summary: `${job.clip ? "clip · " : ""}${paintings} · ${job.params.size} px`,
  });
  for (const [name, value] of Object.entries(pictures)) if (value) entry[name] = value;
  saveRecent(existing ? entries : [entry, ...entries]);
}

function renderRecent() {
  const entries = recentJobs();
  $("recent-section").hidden = entries.length === 0;
  $("recent").replaceChildren(
    ...entries.map((entry) => {
      const picture = entry.result ?? entry.content;
      return el(
        "li",
        {},
        el(
          "button",
          { type: "button", class: "recent-job", onclick: () => openJob(entry), "aria-label": `Open job ${entry.id}` },
          picture ? el("img", { src: picture, alt: "" }) : el("span", { class: "thumb-fallback", text: "no preview" }),
          el("span", { class: `badge ${entry.status}`, text: entry.status }),
          el("span", { class: "recent-meta", text: `${formatWhen(entry.createdAt)} · ${entry.summary ?? ""}` }),
        ),
      );
    }),
  );
}

async function openJob(entry) {
  clearProblem();
  let job;
  try {
    job = await api.get(entry.id);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      saveRecent(recentJobs().map((item) => (item.id === entry.id ? { ...item, status: "expired" } : item)));
      showProblem("That job is gone.", "The server no longer keeps it (jobs are removed after a while).", "notice");
    } else {
      showProblem("Could not open the job.", explain(error));
    }
    return;
  }
  showInputs({ content: entry.content ?? null, styles: entry.styles ?? [], original: null });
  track(job);
}

// ---------------------------------------------------------------------------------------------------------
// Start-up

function wireApiKey() {
  const input = $("api-key");
  const summary = document.querySelector("#key-settings summary");
  const show = () => {
    summary.textContent = localStorage.getItem(KEY_STORAGE) ? "API key ✓" : "API key";
  };
  input.value = localStorage.getItem(KEY_STORAGE) ?? "";
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    input.dispatchEvent(new Event("change"));
  });
  input.addEventListener("change", () => {
    const key = input.value.trim();
    if (key) localStorage.setItem(KEY_STORAGE, key);
    else localStorage.removeItem(KEY_STORAGE);
    show();
  });
  show();
}

wirePicker("content-drop", "content-input", (files) => pickContent(files[0]));
wirePicker("style-drop", "style-input", pickStyles);
wireApiKey();
$("job-form").addEventListener("submit", submit);
$("cancel").addEventListener("click", cancel);
$("recent-clear").addEventListener("click", () => saveRecent([]));
// Again whenever the tab is looked at: an operator may have fetched the real weights and restarted meanwhile.
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") checkWeights();
});
renderRecent();
loadParameters();
checkWeights();
