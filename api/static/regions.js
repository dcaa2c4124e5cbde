// Where each painting goes: per painting a region of the photo, painted over it with a brush and an eraser (or
// loaded from a mask file), shown in one translucent colour per painting, and sent with the job as `mask_N`.
//
// Each region is a canvas over the photo whose alpha is the mask's weight; its colour only shows which painting
// it belongs to. Painted strokes are opaque, so a painted region sends white (full style) and the rest black; a
// loaded file keeps its grey levels. A painting left unpainted sends no mask and paints the whole photo, as a
// job without masks does.

// One colour per painting, by position: the colour and the number `N` of `mask_N` move together when a
// painting before it is removed. Saturated and apart from each other, and the first two away from the blue of
// skies and the green of leaves that people most often paint over.
export const REGION_COLOURS = ["#e0218a", "#8fd400", "#00b4d8", "#ff7a00"];
// The engine reads a mask at its feature maps' resolution, and the server scales it to the photo; a brush
// stroke's edge gains nothing from more than this many pixels, while four canvases at a phone camera's full
// 12-megapixel size would cost some 200 MB.
const MASK_MAX_SIDE = 1024;
// Alpha below this (out of 255) is sent as black: the anti-aliased fringe an eraser stroke leaves along the
// edge of the paint it removed, which would otherwise turn "all erased" into a nearly black but non-empty mask.
const FAINT = 8;
const LAYER_OPACITY = 0.5; // enough colour to see a region, enough photo to see what it covers
const BRUSH_STEP = 1.25; // "[" and "]" scale the brush by this much

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value == null) continue;
    if (name === "text") node.textContent = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  node.append(...children);
  return node;
}

/** The canvas's pixels; the context is created for reading, which is most of what a mask canvas does. */
function pixelsOf(canvas) {
  return canvas.getContext("2d", { willReadFrequently: true }).getImageData(0, 0, canvas.width, canvas.height);
}

function hasWeight(canvas) {
  const { data } = pixelsOf(canvas);
  for (let i = 3; i < data.length; i += 4) if (data[i] >= FAINT) return true;
  return false;
}

/** The region as a grey PNG: its weight (alpha) as grey on black, opaque. */
function greyPng(canvas) {
  const { data } = pixelsOf(canvas);
  const out = new ImageData(canvas.width, canvas.height);
  for (let i = 0; i < data.length; i += 4) {
    const weight = data[i + 3] >= FAINT ? data[i + 3] : 0;
    out.data[i] = out.data[i + 1] = out.data[i + 2] = weight;
    out.data[i + 3] = 255;
  }
  const grey = el("canvas", { width: canvas.width, height: canvas.height });
  grey.getContext("2d").putImageData(out, 0, 0);
  return new Promise((resolve, reject) =>
    grey.toBlob((blob) => (blob ? resolve(blob) : reject(new Error("the mask could not be encoded"))), "image/png"),
  );
}

/** Repaint the canvas's opaque and translucent pixels in `colour`, keeping their alpha. */
function tint(canvas, colour) {
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.save();
  ctx.globalCompositeOperation = "source-in";
  ctx.fillStyle = colour;
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.restore();
}

/**
 * The region editor inside `#regions`. `onProblem(title, message, kind)` shows a problem the way the page does.
 * The page tells it the photo (`setPhoto`) and the paintings (`setPaintings`), and asks it for the masks to
 * send (`maskFields`).
 */
export function createRegions({ onProblem }) {
  const $ = (id) => document.getElementById(id);
  const panel = $("regions");
  const stage = $("stage");
  const photo = $("stage-photo");
  const layers = $("stage-layers");
  const cursor = $("brush-cursor");
  const legend = $("region-legend");
  const size = $("brush-size");
  const maskInput = $("mask-input");

  const state = {
    photoToken: 0,
    width: 0, // the masks' size in pixels: the photo's, or proportional to it at most MASK_MAX_SIDE wide or high
    height: 0,
    paintings: [], // [{file, url}], in the order sent
    regions: new Map(), // painting -> {canvas, painted: whether it has any weight, from: the file it came from}
    active: 0, // index into paintings
    stroke: null, // {pointerId, x, y} while a pointer paints
    at: null, // where the brush is shown over the stage, in CSS pixels; null while it is not shown
    last: null, // where it was last, for the keyboard to go on from
  };

  const erasing = () => document.querySelector("input[name=region-tool]:checked")?.value === "eraser";
  const brushSize = () => Number(size.value);
  const activePainting = () => state.paintings[state.active] ?? null;

  function regionOf(painting) {
    let region = state.regions.get(painting);
    if (!region) {
      const canvas = el("canvas", { width: state.width, height: state.height, class: "region-layer" });
      canvas.style.opacity = LAYER_OPACITY;
      region = { canvas, from: null, painted: false };
      state.regions.set(painting, region);
    }
    return region;
  }

  // --- Showing ---------------------------------------------------------------------------------------------

  /** Show the regions and what the legend and the tools say of them; the legend's entries stay in place, so
   * a radio button moved to with the arrow keys keeps the focus. */
  function render() {
    panel.hidden = !state.width || state.paintings.length === 0;
    if (panel.hidden) return;
    // The layers stack in painting order with the selected one on top, so what is being painted is never
    // hidden under another painting's colour.
    const order = state.paintings.map((painting, index) => ({ painting, index }));
    order.push(...order.splice(state.active, 1));
    layers.replaceChildren(
      ...order.map(({ painting, index }) => {
        const { canvas } = regionOf(painting);
        if (canvas.dataset.colour !== REGION_COLOURS[index]) {
          tint(canvas, REGION_COLOURS[index]);
          canvas.dataset.colour = REGION_COLOURS[index];
        }
        return canvas;
      }),
    );
    for (const [index, entry] of [...legend.children].entries()) {
      const region = regionOf(state.paintings[index]);
      let status = "whole photo";
      if (region.painted) status = region.from ? `region from ${region.from}` : "painted region";
      entry.querySelector(".region-status").textContent = status;
      entry.querySelector("input").checked = index === state.active;
    }
    const active = activePainting();
    const name = `painting ${state.active + 1}`;
    $("region-clear").setAttribute("aria-label", `Clear the region of ${name}`);
    $("region-clear").disabled = !regionOf(active).painted;
    $("mask-load-label").textContent = `Load a mask for ${name}…`;
    stage.setAttribute("aria-label", `The photo: paint where ${name} goes`);
    stage.style.setProperty("--brush-colour", REGION_COLOURS[state.active]);
    const painted = state.paintings.filter((painting) => regionOf(painting).painted).length;
    $("regions-count").textContent = painted ? ` · ${painted} of ${state.paintings.length} painted` : " · optional";
  }

  function legendEntry(painting, index) {
    const radio = el("input", { type: "radio", name: "region-painting", value: index, class: "visually-hidden" });
    radio.addEventListener("change", () => {
      state.active = index;
      render();
    });
    return el(
      "label",
      { class: "region-choice", title: painting.file.name },
      radio,
      el("span", { class: "swatch", style: `--swatch: ${REGION_COLOURS[index]}`, "aria-hidden": "true" }),
      el("img", { src: painting.url, alt: "" }),
      el(
        "span",
        { class: "region-name" },
        el("strong", { text: `Painting ${index + 1}` }),
        el("small", { class: "region-status" }),
      ),
    );
  }

  function placeCursor() {
    cursor.hidden = !state.at;
    if (!state.at) return;
    state.last = state.at;
    cursor.style.width = cursor.style.height = `${brushSize()}px`;
    cursor.style.transform = `translate(${state.at.x}px, ${state.at.y}px) translate(-50%, -50%)`;
    cursor.classList.toggle("erasing", erasing());
  }

  /** After a change to the selected painting's region: is anything left of it, and what the legend says. */
  function settle() {
    const region = regionOf(activePainting());
    region.painted = hasWeight(region.canvas);
    if (!region.painted) region.from = null;
    render();
  }

  // --- Painting ------------------------------------------------------------------------------------------

  /** A point of the stage in CSS pixels -> the same point in the masks' pixels. */
  function toMask({ x, y }) {
    const { width } = stage.getBoundingClientRect();
    const scale = state.width / width;
    return { x: x * scale, y: y * scale, scale };
  }

  function paint(from, to) {
    const { canvas } = regionOf(activePainting());
    const ctx = canvas.getContext("2d", { willReadFrequently: true });
    const a = toMask(from);
    const b = toMask(to);
    const width = brushSize() * a.scale;
    ctx.save();
    ctx.globalCompositeOperation = erasing() ? "destination-out" : "source-over";
    ctx.fillStyle = ctx.strokeStyle = REGION_COLOURS[state.active];
    if (a.x === b.x && a.y === b.y) {
      ctx.beginPath();
      ctx.arc(a.x, a.y, width / 2, 0, 2 * Math.PI);
      ctx.fill();
    } else {
      ctx.lineWidth = width;
      ctx.lineCap = ctx.lineJoin = "round";
      ctx.beginPath();
      ctx.moveTo(a.x, a.y);
      ctx.lineTo(b.x, b.y);
      ctx.stroke();
    }
    ctx.restore();
  }

  function stagePoint(event) {
    const rect = stage.getBoundingClientRect();
    return { x: event.clientX - rect.left, y: event.clientY - rect.top };
  }

  stage.addEventListener("pointerdown", (event) => {
    if (state.stroke || event.button !== 0 || !activePainting()) return;
    event.preventDefault();
    stage.focus({ preventScroll: true });
    stage.setPointerCapture(event.pointerId);
    const point = stagePoint(event);
    state.stroke = { pointerId: event.pointerId, ...point };
    state.at = point;
    paint(point, point);
    placeCursor();
  });
  stage.addEventListener("pointermove", (event) => {
    const point = stagePoint(event);
    state.at = point;
    placeCursor();
    if (state.stroke?.pointerId !== event.pointerId) return;
    // Coalesced events keep a fast stroke a smooth line rather than a polygon of the frames' positions.
    for (const sample of event.getCoalescedEvents?.() ?? [event]) {
      const next = stagePoint(sample);
      paint(state.stroke, next);
      Object.assign(state.stroke, next);
    }
  });
  const endStroke = (event) => {
    if (state.stroke?.pointerId !== event.pointerId) return;
    state.stroke = null;
    settle();
  };
  stage.addEventListener("pointerup", endStroke);
  stage.addEventListener("pointercancel", endStroke);
  stage.addEventListener("pointerleave", () => {
    if (state.stroke) return;
    state.at = null;
    placeCursor();
  });

  // The keyboard's brush: arrows move it, Shift+arrows paint along the way, Space or Enter paints a dab there,
  // "[" and "]" change its size, B and E pick the brush and the eraser.
  const ARROWS = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
  const showKeyboardBrush = () => {
    if (state.at) return;
    const { width, height } = stage.getBoundingClientRect();
    state.at = state.last ?? { x: width / 2, y: height / 2 };
    placeCursor();
  };
  stage.addEventListener("focus", showKeyboardBrush);
  stage.addEventListener("blur", () => {
    state.at = null;
    placeCursor();
  });
  stage.addEventListener("keydown", (event) => {
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    showKeyboardBrush();
    const { width, height } = stage.getBoundingClientRect();
    if (event.key in ARROWS) {
      const [dx, dy] = ARROWS[event.key];
      const step = Math.max(2, brushSize() / 3);
      const next = {
        x: Math.min(Math.max(state.at.x + dx * step, 0), width),
        y: Math.min(Math.max(state.at.y + dy * step, 0), height),
      };
      if (event.shiftKey) paint(state.at, next);
      state.at = next;
      if (event.shiftKey) settle();
    } else if (event.key === " " || event.key === "Enter") {
      paint(state.at, state.at);
      settle();
    } else if (event.key === "[" || event.key === "]") {
      const factor = event.key === "]" ? BRUSH_STEP : 1 / BRUSH_STEP;
      size.value = Math.round(brushSize() * factor);
      size.dispatchEvent(new Event("input"));
    } else if (event.key === "b" || event.key === "e") {
      $(event.key === "b" ? "tool-brush" : "tool-eraser").checked = true;
    } else {
      return;
    }
    event.preventDefault();
    placeCursor();
  });

  size.addEventListener("input", () => {
    $("brush-size-value").textContent = `${size.value} px`;
    placeCursor();
  });
  size.dispatchEvent(new Event("input"));

  $("region-clear").addEventListener("click", () => {
    const region = regionOf(activePainting());
    region.canvas.getContext("2d", { willReadFrequently: true }).clearRect(0, 0, state.width, state.height);
    // The button is disabled now that there is nothing to clear; the focus goes on to the photo, not to the page.
    if (document.activeElement === $("region-clear")) stage.focus();
    settle();
  });

  maskInput.addEventListener("change", async () => {
    const file = maskInput.files[0];
    maskInput.value = ""; // so loading the same file again still fires "change"
    if (file) await loadMask(file);
  });

  /** A mask file as the selected painting's region: its grey levels (transparent counts as black) as weights. */
  async function loadMask(file) {
    const painting = activePainting();
    const index = state.active;
    let bitmap;
    try {
      bitmap = await createImageBitmap(file);
    } catch {
      onProblem("That mask could not be read.", `${file.name} is not an image this browser can open.`);
      return;
    }
    const flat = el("canvas", { width: state.width, height: state.height });
    const ctx = flat.getContext("2d", { willReadFrequently: true });
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, state.width, state.height);
    ctx.drawImage(bitmap, 0, 0, state.width, state.height);
    bitmap.close();
    const pixels = ctx.getImageData(0, 0, state.width, state.height);
    const { data } = pixels;
    let any = false;
    for (let i = 0; i < data.length; i += 4) {
      const grey = Math.round(0.299 * data[i] + 0.587 * data[i + 1] + 0.114 * data[i + 2]);
      data[i] = data[i + 1] = data[i + 2] = 255;
      data[i + 3] = grey;
      any ||= grey >= FAINT;
    }
    if (!any) {
      onProblem(
        "That mask is black all over.",
        `With ${file.name}, painting ${index + 1} would go nowhere: white is where it goes, black where it does not.`,
        "notice",
      );
      return;
    }
    if (!state.paintings.includes(painting)) return; // removed while the file was read
    const region = regionOf(painting);
    region.canvas.getContext("2d", { willReadFrequently: true }).putImageData(pixels, 0, 0);
    tint(region.canvas, REGION_COLOURS[index]);
    region.canvas.dataset.colour = REGION_COLOURS[index];
    region.painted = true;
    region.from = file.name;
    render();
  }

  // --- What the page calls -------------------------------------------------------------------------------

  return {
    /** The photo the regions are painted over; a new photo starts them afresh. */
    async setPhoto(picked) {
      const token = ++state.photoToken;
      state.regions.clear();
      state.width = state.height = 0;
      state.last = null;
      photo.removeAttribute("src");
      render();
      if (!picked) return;
      photo.src = picked.url;
      try {
        await photo.decode();
      } catch {
        return; // not a picture the browser can show: no regions (the service says what is wrong on submit)
      }
      if (token !== state.photoToken) return;
      const { naturalWidth: width, naturalHeight: height } = photo;
      const scale = Math.min(1, MASK_MAX_SIDE / Math.max(width, height));
      state.width = Math.max(1, Math.round(width * scale));
      state.height = Math.max(1, Math.round(height * scale));
      stage.style.setProperty("--aspect", `${width} / ${height}`);
      render();
    },

    /** The paintings in the order they are sent; a removed painting's region goes with it. */
    setPaintings(paintings) {
      const selected = activePainting();
      state.paintings = [...paintings];
      state.active = Math.max(state.paintings.indexOf(selected), 0);
      for (const painting of state.regions.keys()) {
        if (!state.paintings.includes(painting)) state.regions.delete(painting);
      }
      legend.replaceChildren(...state.paintings.map((painting, index) => legendEntry(painting, index)));
      render();
    },

    /** The photo with its regions over it, as they are shown, for a thumbnail; null when none is painted. */
    async picture() {
      const painted = state.paintings.map((painting) => state.regions.get(painting)).filter((region) => region?.painted);
      if (!state.width || !painted.length) return null;
      const canvas = el("canvas", { width: state.width, height: state.height });
      const ctx = canvas.getContext("2d");
      ctx.drawImage(photo, 0, 0, state.width, state.height);
      ctx.globalAlpha = LAYER_OPACITY;
      for (const region of painted) ctx.drawImage(region.canvas, 0, 0);
      return new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
    },

    /** `[field, blob, filename]` for each painting with a region; none for a painting left unpainted. */
    async maskFields() {
      const fields = [];
      for (const [index, painting] of state.paintings.entries()) {
        const region = state.regions.get(painting);
        if (state.width && region?.painted) {
          fields.push([`mask_${index + 1}`, await greyPng(region.canvas), `region-${index + 1}.png`]);
        }
      }
      return fields;
    },
  };
}
