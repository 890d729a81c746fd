// The search page: a text search showing thumbnails with both scores, the collection newest first (paged, each
// image with a delete button), and a form that adds images (several files, dropped or picked, or a URL) or shows
// one image's labels and captions. Everything goes through the JSON API (/docs).
"use strict";

const $ = (id) => document.getElementById(id);
const GALLERY_PAGE = 24;
const MEANING = {
  log_likelihood: "log P(text | image): how likely the model is to write exactly this text as the caption of " +
    "this image. Closer to 0 is better; results are ranked by it (stage 2).",
  contrastive: "Cosine similarity (-1 to 1) of the image's and the text's embeddings: the fast score that picked " +
    "the candidates from the whole collection (stage 1). Higher is better.",
  label: "The label's prompt scored against the image (log-likelihood, or the model's ranking score): higher is " +
    "better; compare labels of one image, not across images.",
  caption: "log P(caption | image) of this generated caption: closer to 0 is better.",
};
let galleryNext = null; // `before` of the next gallery page, or null when it is all shown

function say(text, isError = false) {
  $("message").textContent = text;
  $("message").className = isError ? "error" : "";
}

async function call(path, options) {
  const response = await fetch(path, options);
  const body = response.status === 204 ? {} : await response.json();
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

async function refreshCount() {
  try {
    const { count, model_version } = await call("/api/images/count");
    $("count").textContent = `${count} images, model version ${model_version}`;
  } catch (error) {
    $("count").textContent = error.message;
  }
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function thumbnail(id, source) {
  const image = element("img");
  image.src = `/api/images/${encodeURIComponent(id)}/file`;
  image.alt = source;
  image.loading = "lazy";
  return image;
}

function score(name, label, value) {
  const line = element("div", "score");
  line.title = MEANING[name];
  line.append(`${label} `, element("span", name, value.toFixed(3)));
  return line;
}

function resultCard(row, rank) {
  const card = element("figure", "card result");
  card.dataset.id = row.id;
  const caption = element("figcaption");
  caption.append(element("b", "", `${rank}.`), score("log_likelihood", "log-likelihood", row.log_likelihood),
    score("contrastive", "contrastive", row.contrastive), element("div", "source", row.source));
  caption.lastChild.title = row.source;
  card.append(thumbnail(row.id, row.source), caption);
  return card;
}

function galleryCard({ id, payload }) {
  const card = element("figure", "card entry");
  card.dataset.id = id;
  const remove = element("button", "delete", "Delete");
  remove.type = "button";
  remove.title = "Remove this image from the index";
  remove.addEventListener("click", () => deleteImage(id, card));
  const caption = element("figcaption");
  caption.append(element("div", "source", payload.source),
    element("div", "added", payload.added.replace("T", " ").replace("+00:00", " UTC")),
    remove);
  caption.firstChild.title = payload.source;
  card.append(thumbnail(id, payload.source), caption);
  return card;
}

async function loadGallery(reset) {
  const params = new URLSearchParams({ limit: GALLERY_PAGE });
  if (!reset && galleryNext !== null) params.set("before", galleryNext);
  try {
    const page = await call(`/api/gallery?${params}`);
    const cards = page.images.map(galleryCard);
    if (reset) $("gallery").replaceChildren(...cards);
    else $("gallery").append(...cards);
    galleryNext = page.next_before;
    $("more").hidden = galleryNext === null;
    $("gallery-empty").hidden = page.count > 0;
    $("gallery-title").textContent = `The collection, newest first: ${page.count} images`;
  } catch (error) {
    $("gallery-empty").hidden = false;
    $("gallery-empty").textContent = error.message;
  }
}

async function deleteImage(id, card) {
  try {
    await call(`/api/images/${encodeURIComponent(id)}`, { method: "DELETE" });
    document.querySelectorAll(`[data-id="${CSS.escape(id)}"]`).forEach((node) => node.remove());
    say("Deleted the image from the index");
    refreshCount();
    loadGallery(true);
  } catch (error) {
    say(error.message, true);
  }
}

$("search-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const params = new URLSearchParams({ q: $("query").value, k: $("k").value });
  say("Searching…");
  try {
    const rows = await call(`/search?${params}`);
    $("results").replaceChildren(...rows.map((row, n) => resultCard(row, n + 1)));
    $("results-title").textContent = `Results for “${$("query").value}”`;
    $("results-panel").hidden = rows.length === 0;
    say(rows.length ? `${rows.length} results, best first by caption log-likelihood` : "No images in the index yet");
  } catch (error) {
    say(error.message, true);
  }
});

function chosenFiles() {
  return Array.from($("file").files);
}

function listItems(list, rows, text, meaning) {
  list.replaceChildren(...rows.map((row) => {
    const item = element("li", "", text(row));
    item.title = meaning;
    return item;
  }));
}

async function addFiles(files) {
  const progress = $("progress");
  progress.max = files.length;
  progress.value = 0;
  progress.hidden = false;
  let added = 0, already = 0;
  const failed = [];
  for (const file of files) { // one request per file: each is checked, embedded and stored on its own
    say(`Adding ${progress.value + 1} of ${files.length}: ${file.name}…`);
    const form = new FormData();
    form.append("file", file);
    try {
      const result = await call("/api/images", { method: "POST", body: form });
      if (result.added) added += 1;
      else already += 1;
    } catch (error) {
      failed.push(`${file.name}: ${error.message}`);
    }
    progress.value += 1;
  }
  progress.hidden = true;
  const summary = files.length === 1 && !failed.length
    ? (added ? `Added upload:${files[0].name}` : `upload:${files[0].name} is already in the index`)
    : `Added ${added} of ${files.length} images (${already} already in, ${failed.length} failed)`;
  say(failed.length ? `${summary}. ${failed.join("; ")}` : summary, failed.length > 0);
}

async function addUrl(url) {
  say("Adding…");
  const form = new FormData();
  form.append("url", url);
  const added = await call("/api/images", { method: "POST", body: form });
  say(added.added ? `Added ${added.source} as ${added.id}` : `Already in the index as ${added.id}`);
}

async function describe(file, url) {
  say("Describing…");
  const form = new FormData();
  if (file) form.append("file", file);
  else form.append("url", url);
  form.append("labels", $("labels").value);
  const described = await call("/api/describe", { method: "POST", body: form });
  listItems($("captions"), described.captions, (c) => `${c.caption} (${c.log_likelihood.toFixed(2)})`,
    MEANING.caption);
  listItems($("label-list"), described.labels, (l) => `${l.label} (${l.score.toFixed(2)})`, MEANING.label);
  $("described-image").src = file ? URL.createObjectURL(file) : url;
  $("description").hidden = false;
  say("Labels best first; captions best first" + (chosenFiles().length > 1 ? " (the first chosen file)" : ""));
}

$("image-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const action = event.submitter ? event.submitter.value : "add";
  const files = chosenFiles();
  const url = $("url").value;
  try {
    if (!files.length && !url) throw new Error("choose or drop image files, or give a URL");
    if (action === "describe") {
      await describe(files[0], url);
      return;
    }
    if (files.length) await addFiles(files);
    else await addUrl(url);
    refreshCount();
    loadGallery(true);
  } catch (error) {
    say(error.message, true);
  }
});

function showChosen() {
  const files = chosenFiles();
  $("drop-text").textContent = files.length ? `${files.length} file(s) chosen` : "or drop images here";
}

$("file").addEventListener("change", showChosen);
$("drop").addEventListener("dragover", (event) => {
  event.preventDefault();
  $("drop").classList.add("over");
});
$("drop").addEventListener("dragleave", () => $("drop").classList.remove("over"));
$("drop").addEventListener("drop", (event) => {
  event.preventDefault();
  $("drop").classList.remove("over");
  $("file").files = event.dataTransfer.files;
  showChosen();
});
$("more").addEventListener("click", () => loadGallery(false));

refreshCount();
loadGallery(true);
