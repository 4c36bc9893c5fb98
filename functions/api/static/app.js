// The demo page: send the photo to POST v1/crop (JSON with the debug view and crop previews
// as data URLs) and lay the answer out. Plain JS, no build step; URLs are relative so the
// page works at any base path (uvicorn locally, API Gateway's stage path on AWS).
"use strict";

const $ = (selector) => document.querySelector(selector);
let latest = 0; // only the newest request's answer is shown
let focalPoint = null; // [x, y] in fractions of the upright photo, picked by a click; null: automatic
let photoUrl = null; // the chosen file, shown to pick a focal point on

// The point of a click on the photo, in fractions of the photo as shown (the browser shows
// it upright, as the engine measures it), to 4 places.
function pointOf(event, img) {
  const rect = img.getBoundingClientRect();
  const at = (offset, size) => Math.round(Math.min(1, Math.max(0, offset / size)) * 1e4) / 1e4;
  return [at(event.clientX - rect.left, rect.width), at(event.clientY - rect.top, rect.height)];
}

function showFocalPoint() {
  const marker = $("#focus-marker");
  marker.hidden = focalPoint === null;
  $("#clear-focus").hidden = focalPoint === null;
  if (focalPoint !== null) {
    marker.style.left = `${100 * focalPoint[0]}%`;
    marker.style.top = `${100 * focalPoint[1]}%`;
  }
}

function chosenRatios() {
  const ratios = [...document.querySelectorAll(".ratio:checked")].map((el) => el.value);
  const custom = $("#custom-ratios").value.split(",").map((s) => s.trim()).filter(Boolean);
  return [...ratios, ...custom];
}

function setStatus(text, isError = false) {
  const status = $("#status");
  status.textContent = text;
  status.classList.toggle("error", isError);
}

async function cropPhoto() {
  const file = $("#photo").files[0];
  if (!file) return;
  const ratios = chosenRatios();
  if (ratios.length === 0) {
    setStatus("Pick at least one ratio.", true);
    return;
  }
  const token = ++latest;
  const form = new FormData();
  form.append("image", file);
  form.append("ratios", ratios.join(","));
  if (focalPoint !== null) form.append("focal_point", focalPoint.join(","));
  const centred = focalPoint === null ? "" : `, centred on (${focalPoint.join(", ")})`;
  setStatus(`Cropping ${file.name} for ${ratios.join(", ")}${centred}…`);
  $("#crop-button").disabled = true;
  try {
    const response = await fetch("v1/crop?include=debug,images", { method: "POST", body: form });
    const answer = await response.json();
    if (token !== latest) return;
    if (!response.ok) {
      const detail = typeof answer.detail === "string" ? answer.detail : JSON.stringify(answer.detail);
      setStatus(`${response.status} ${answer.error || "error"}: ${detail}`, true);
      return;
    }
    show(answer);
    setStatus(`${file.name}: ${answer.width}×${answer.height}, ${answer.crops.length} crops${centred}.`);
  } catch (err) {
    if (token === latest) setStatus(`Request failed: ${err}`, true);
  } finally {
    if (token === latest) $("#crop-button").disabled = false;
  }
}

function show(answer) {
  $("#results").hidden = false;
  $("#debug-view").src = answer.debug_view;
  const faces = answer.faces.length;
  const models = Object.entries(answer.models || {}).map(([k, v]) => `${k}: ${v}`).join("; ");
  $("#summary").textContent =
    `${faces} face${faces === 1 ? "" : "s"} found. Models: ${models || "none reported"}.`;

  const timings = $("#timings tbody");
  timings.replaceChildren(
    ...Object.entries(answer.timings).map(([stage, ms]) => {
      const row = document.createElement("tr");
      row.append(cell("th", stage), cell("td", ms.toFixed(1)));
      return row;
    })
  );

  const crops = $("#crops");
  crops.replaceChildren(
    ...answer.crops.map((crop) => {
      const card = document.createElement("figure");
      card.className = "crop-card";
      card.dataset.ratio = crop.ratio;
      const img = document.createElement("img");
      img.src = crop.image;
      img.alt = `Crop ${crop.ratio}`;
      img.dataset.ratio = crop.ratio;
      img.dataset.box = crop.box.join(",");
      const caption = document.createElement("figcaption");
      const [x, y, w, h] = crop.box;
      caption.innerHTML =
        `<strong>${escapeHtml(crop.ratio)}</strong> score ${crop.score.toFixed(3)}` +
        `<br>box ${x},${y} ${w}×${h}` +
        `<br>saliency kept ${(100 * crop.saliency_kept).toFixed(0)}%, faces kept ${crop.faces_kept}` +
        (crop.face_report && crop.face_report.protected_cut
          ? `<br><strong>${crop.face_report.protected_cut} face(s) could not be kept whole</strong>`
          : "") +
        `<br><small>chosen by ${escapeHtml(crop.chosen_by)}</small>`;
      card.append(img, caption);
      return card;
    })
  );
}

function cell(tag, text) {
  const el = document.createElement(tag);
  el.textContent = text;
  return el;
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

document.addEventListener("DOMContentLoaded", () => {
  const input = $("#photo");
  input.addEventListener("change", () => {
    $("#crop-button").disabled = !input.files.length;
    focalPoint = null; // a new photo starts automatic
    showFocalPoint();
    if (photoUrl) URL.revokeObjectURL(photoUrl);
    photoUrl = input.files.length ? URL.createObjectURL(input.files[0]) : null;
    if (photoUrl) $("#photo-view").src = photoUrl;
    cropPhoto();
  });
  $("#photo-view").addEventListener("click", (event) => {
    focalPoint = pointOf(event, event.currentTarget);
    showFocalPoint();
    cropPhoto();
  });
  $("#clear-focus").addEventListener("click", () => {
    focalPoint = null;
    showFocalPoint();
    cropPhoto();
  });
  $("#crop-form").addEventListener("submit", (event) => {
    event.preventDefault();
    cropPhoto();
  });
  const drop = $("#drop");
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    if (event.dataTransfer.files.length) {
      input.files = event.dataTransfer.files;
      input.dispatchEvent(new Event("change"));
    }
  });
});
