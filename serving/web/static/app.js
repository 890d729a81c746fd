// The search page: a text search, the collection newest first (paged), a viewer for any image (the image large,
// its captions and labels, its scores for the current search, "more like this", delete), and a form that adds
// images (files or a web address) or describes one without adding it. Everything goes through the JSON API
// (/docs); errors are told in the user's words here, the API's own message stays in its answer.
"use strict";

const $ = (id) => document.getElementById(id);
const GALLERY_PAGE = 24;
const MEANING = {
  log_likelihood: "log P(text | image): how likely the model is to write exactly this text as the caption of " +
    "this image. Closer to 0 is better; results are ranked by it (stage 2).",
  contrastive: "Cosine similarity (-1 to 1) of the image's and the text's embeddings: the fast score that picked " +
    "the candidates from the whole collection (stage 1). Higher is better.",
  similarity: "Cosine similarity (-1 to 1) of the two images' embeddings. Higher is more alike.",
  caption: "log P(caption | image) of this generated caption: closer to 0 is better.",
};
// Until /api/limits answers. poor_match_mean_log_prob: below this log-likelihood per token of the best result,
// nothing in the collection describes the query well (the server's --poor_match_mean_log_prob, docs/search.md).
let limits = {
  max_upload_bytes: 20 * 2 ** 20, max_image_pixels: 40e6, fetches_private_urls: false, poor_match_mean_log_prob: -4,
};
let galleryNext = null; // `before` of the next gallery page, or null when it is all shown
let searchNumber = 0; // answers to an older search are dropped
let shownQuery = null; // the query whose results are on the page
let current = null; // the viewer's image: { id } for an indexed one, or { file } / { url }, with its name
let describeNumber = 0;

// ----- Talking to the server -----

class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
    this.detail = detail;
  }
}

async function call(path, options) {
  let response;
  try {
    response = await fetch(path, options);
  } catch {
    throw new ApiError(0, "the server did not answer");
  }
  const body = response.status === 204 ? {} : await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(response.status, body.error || `HTTP ${response.status}`);
  return body;
}

const megabytes = (bytes) => `${(bytes / 2 ** 20).toFixed(bytes < 10 * 2 ** 20 ? 1 : 0)} MB`;
const fileSize = (bytes) => bytes < 2 ** 20 ? `${Math.max(1, Math.round(bytes / 1024))} KB` : megabytes(bytes);
const megapixels = (pixels) => `${Math.round(pixels / 1e6)} megapixels`;

// The API's one-line errors, told as a user would say them; the rule that matches first wins.
const PLAIN_ERRORS = [
  [/^the server did not answer/, () => "Cannot reach the server: is it running? Try again in a moment."],
  [/larger than .*limit of (\d+) bytes/, (m) => `The image is larger than this server takes (${megabytes(+m[1])}).`],
  [/over the limit of (\d+) pixels/, (m) => `The image has too many pixels: this server takes up to ` +
    `${megapixels(+m[1])}.`],
  [/over the limit of (\d+) frames/, (m) => `The animation has too many frames: at most ${m[1]}.`],
  [/private, loopback or link-local/, () => "This server only fetches public addresses."],
  [/only http and https/, () => "Give a web address that starts with http:// or https://."],
  [/cannot resolve host|Name or service not known/, () => "No web site has that name: check the address."],
  [/timed out/, () => "That address took too long to answer."],
  [/: HTTP (\d+) (.*)$/, (m) => `That web site answered ${m[1]} ${m[2]}: it did not send an image.`],
  [/Connection|Errno|SSL/, () => "Could not connect to that address."],
  [/redirects/, () => "That address sends the browser round in circles (too many redirects)."],
  [/not a readable image|unsupported image format/, () => "This is not an image the model can read: use a " +
    "JPEG, PNG, BMP, GIF or WebP."],
  [/no image with id/, () => "That image is no longer in the collection."],
  [/fetches are already running/, () => "The server is busy fetching other addresses: try again in a few seconds."],
  [/need this server's token/, () => "Adding and deleting need this server's access token."],
  [/re-index/, () => "The collection was indexed by another model version: re-index it (see the API page)."],
  [/more than this server's limit of (\d+)/, (m) => `That is more than this server allows (at most ${m[1]}).`],
];

function plain(error) {
  const detail = error.detail || error.message || "";
  for (const [pattern, say] of PLAIN_ERRORS) {
    const match = detail.match(pattern);
    if (match) return say(match);
  }
  // The API's other messages are already plain; drop the server flags they name.
  return detail.replace(/\s*\((?:see )?--[a-z_]+\)/g, "").replace(/^./, (c) => c.toUpperCase());
}

// ----- Small helpers -----

function say(text, isError = false, where = "message") {
  $(where).textContent = text;
  $(where).className = isError ? "error" : "";
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// The name a user gave the image: the API marks uploads "upload:<file name>".
const shownName = (source) => source.replace(/^upload:/, "");
const when = (added) => new Date(added).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });

// Runs `work` with `button` busy and disabled; a second click (or Enter) while it runs does nothing.
async function busy(button, work) {
  if (button.disabled) return;
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  try {
    await work();
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
  }
}

// A picture smaller than its box is drawn with sharp pixels; a larger one is smoothed by the browser.
function drawSharpWhenEnlarged(image) {
  image.addEventListener("load", () => {
    image.classList.toggle("enlarged", image.naturalWidth < image.clientWidth);
  });
}

// ----- The collection and the results -----

async function refreshCount() {
  try {
    const { count, model_version } = await call("/api/images/count");
    $("count").textContent = `${count} image${count === 1 ? "" : "s"}`;
    $("count").title = `embedded by version ${model_version} of the model`;
  } catch (error) {
    $("count").textContent = plain(error);
  }
}

function thumbnail(id, name) {
  const image = element("img");
  image.src = `/api/images/${encodeURIComponent(id)}/thumbnail`;
  image.alt = name;
  image.loading = "lazy";
  drawSharpWhenEnlarged(image);
  return image;
}

function score(name, label, value) {
  const line = element("div", "score");
  line.title = MEANING[name];
  line.append(`${label} `, element("span", name, value.toFixed(3)));
  return line;
}

// A card opens its image in the viewer, by click or by Enter.
function card(className, entry, details) {
  const node = element("figure", `card ${className}`);
  node.dataset.id = entry.id;
  node.tabIndex = 0;
  node.setAttribute("role", "button");
  const name = shownName(entry.payload.source);
  node.setAttribute("aria-label", `Open ${name}`);
  const caption = element("figcaption");
  caption.append(...details, element("div", "source", name));
  caption.lastChild.title = name;
  node.append(thumbnail(entry.id, name), caption);
  const open = () => openIndexed(entry);
  node.addEventListener("click", open);
  node.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      open();
    }
  });
  return node;
}

const resultCard = (row, rank) => card("result", row, [element("b", "", `${rank}.`),
  score("log_likelihood", "log-likelihood", row.log_likelihood), score("contrastive", "cosine", row.contrastive)]);
const similarCard = (row, rank) => card("result", row, [element("b", "", `${rank}.`),
  score("similarity", "alike", row.similarity)]);
const galleryCard = (entry) => card("entry", entry, [element("div", "added", when(entry.payload.added))]);

function setGalleryCount(count) {
  $("gallery-title").textContent = `The collection, newest first: ${count} image${count === 1 ? "" : "s"}`;
  $("gallery-title").dataset.count = count;
  $("gallery-empty").hidden = count > 0;
}

async function loadGallery() {
  const params = new URLSearchParams({ limit: GALLERY_PAGE });
  if (galleryNext !== null) params.set("before", galleryNext);
  const page = await call(`/api/gallery?${params}`);
  $("gallery").append(...page.images.map(galleryCard));
  galleryNext = page.next_before;
  $("more").hidden = galleryNext === null;
  setGalleryCount(page.count);
}

// New images go on top; the cards already shown (and the user's place among them) stay.
async function showNewestInGallery(howMany) {
  const page = await call(`/api/gallery?limit=${Math.max(1, Math.min(howMany, 100))}`);
  const shown = new Set(Array.from($("gallery").children, (node) => node.dataset.id));
  $("gallery").prepend(...page.images.filter((entry) => !shown.has(entry.id)).map(galleryCard));
  setGalleryCount(page.count);
}

function showResults(title, cards, note) {
  $("results").replaceChildren(...cards);
  $("results-title").textContent = title;
  $("results-note").hidden = !note;
  $("results-note").textContent = note || "";
  $("results-panel").hidden = false;
  $("results-panel").classList.remove("stale");
}

$("search-form").addEventListener("submit", (event) => {
  event.preventDefault();
  busy($("search"), async () => {
    const query = $("query").value.trim();
    const number = ++searchNumber;
    $("results-panel").classList.add("stale");
    say("Searching…");
    try {
      const rows = await call(`/search?${new URLSearchParams({ q: query, k: $("k").value })}`);
      if (number !== searchNumber) return;
      shownQuery = query;
      const poor = rows.length > 0 && rows[0].mean_log_prob < limits.poor_match_mean_log_prob;
      showResults(`Results for “${query}”`, rows.map((row, n) => resultCard(row, n + 1)), poor
        ? `Nothing in the collection matches “${query}” well: these are the closest images, none is a good match.`
        : "");
      say(rows.length ? `${rows.length} results, best first by caption log-likelihood` : "No images in the index yet");
    } catch (error) {
      if (number === searchNumber) {
        $("results-panel").classList.remove("stale");
        say(plain(error), true);
      }
    }
  });
});

// ----- The viewer -----

function openViewer(image) {
  current = image;
  const indexed = image.id !== undefined;
  $("viewer-name").textContent = image.name;
  $("viewer-image").classList.remove("enlarged");
  $("viewer-image").src = image.src;
  $("viewer-image").alt = image.name;
  $("viewer-original").hidden = !indexed;
  $("viewer-original").href = indexed ? image.src : "#";
  $("viewer-facts").textContent = image.facts || "";
  $("viewer-similar").hidden = $("viewer-delete").hidden = !indexed;
  $("viewer-add").hidden = indexed;
  $("viewer-query").hidden = true;
  say("", false, "viewer-message");
  if (!$("viewer").open) $("viewer").showModal();
  if (indexed && shownQuery) showQueryScores(image, shownQuery);
  describeCurrent();
}

function openIndexed(entry) {
  const { payload } = entry;
  const size = payload.width ? `${payload.width}×${payload.height} pixels, ` : "";
  openViewer({
    id: entry.id, name: shownName(payload.source), src: `/api/images/${encodeURIComponent(entry.id)}/file`,
    facts: `${size}${fileSize(payload.bytes || 0)}, added ${when(payload.added)}`,
  });
}

async function showQueryScores(image, query) {
  const form = new FormData();
  form.append("id", image.id);
  form.append("text", query);
  try {
    const [row] = await call("/api/score", { method: "POST", body: form });
    if (current !== image) return;
    $("viewer-query").replaceChildren(`For “${query}”: `, score("log_likelihood", "log-likelihood",
      row.scores.log_likelihood), score("contrastive", "cosine", row.scores.contrastive));
    $("viewer-query").hidden = false;
  } catch (error) {
    if (current === image) say(plain(error), true, "viewer-message");
  }
}

function imageForm(image) {
  const form = new FormData();
  if (image.id !== undefined) form.append("id", image.id);
  else if (image.file) form.append("file", image.file);
  else form.append("url", image.url);
  return form;
}

// Not `busy`: opening another image must describe it even while the last one's answer is on its way (that
// answer is dropped); the Rank button is disabled until the newest answer is in.
async function describeCurrent() {
  const image = current;
  const number = ++describeNumber;
  const form = imageForm(image);
  form.append("labels", $("labels").value);
  $("rank-labels").disabled = true;
  $("rank-labels").setAttribute("aria-busy", "true");
  $("captions").replaceChildren(element("li", "pending", "Writing captions…"));
  $("label-list").replaceChildren();
  $("raw-toggle").hidden = true;
  $("raw-scores").hidden = true;
  try {
    const described = await call("/api/describe", { method: "POST", body: form });
    if (number !== describeNumber) return;
    showCaptions(described.captions);
    showLabels(described.labels);
  } catch (error) {
    if (number !== describeNumber) return;
    $("captions").replaceChildren();
    say(plain(error), true, "viewer-message");
  } finally {
    if (number === describeNumber) {
      $("rank-labels").disabled = false;
      $("rank-labels").removeAttribute("aria-busy");
    }
  }
}

function showCaptions(captions) {
  $("captions").replaceChildren(...captions.map((caption) => {
    const item = element("li", "", caption.caption);
    item.title = `${MEANING.caption} This one: ${caption.log_likelihood.toFixed(2)}`;
    return item;
  }));
  if (!captions.length) $("captions").append(element("li", "pending", "This model does not write captions."));
}

function showLabels(labels) {
  if (labels.length) $("prompt-template").textContent = labels[0].prompt.replace(labels[0].label, "…");
  $("label-list").replaceChildren(...labels.map((label) => {
    const item = element("li", "label");
    const percent = Math.round(label.confidence * 100);
    const bar = element("span", "bar");
    bar.style.width = `${Math.max(percent, 1)}%`;
    item.append(element("span", "name", label.label), element("span", "meter", ""), element("span", "percent",
      `${percent}%`));
    item.children[1].append(bar);
    if (label.unknown_words && label.unknown_words.length) {
      item.classList.add("unknown");
      item.append(element("span", "warning", `The model does not know ${label.unknown_words.map((w) => `“${w}”`)
        .join(", ")}: this label's score means little.`));
    }
    return item;
  }));
  $("raw-toggle").hidden = labels.length === 0;
  const head = element("tr");
  head.append(...["label", "score", "log-likelihood", "pmi"].map((name) => element("th", "", name)));
  $("raw-scores").replaceChildren(head, ...labels.map((label) => {
    const row = element("tr");
    row.append(element("td", "", label.label), ...[label.score, label.log_likelihood, label.pmi]
      .map((value) => element("td", "", value.toFixed(2))));
    return row;
  }));
}

$("raw-toggle").addEventListener("click", () => {
  const show = $("raw-scores").hidden;
  $("raw-scores").hidden = !show;
  $("raw-toggle").setAttribute("aria-expanded", String(show));
  $("raw-toggle").textContent = show ? "Hide the raw scores" : "Show the raw scores";
});
$("labels-form").addEventListener("submit", (event) => {
  event.preventDefault();
  if (current && !$("rank-labels").disabled) describeCurrent();
});
$("viewer-close").addEventListener("click", () => $("viewer").close());
$("viewer").addEventListener("close", () => {
  current = null;
  describeNumber += 1;
  $("rank-labels").disabled = false;
  $("rank-labels").removeAttribute("aria-busy");
});

$("viewer-similar").addEventListener("click", () => busy($("viewer-similar"), async () => {
  const image = current;
  try {
    const rows = await call(`/api/images/${encodeURIComponent(image.id)}/similar?k=${$("k").value}`);
    searchNumber += 1; // an answer to a search still running must not replace these
    shownQuery = null;
    showResults(`Images like ${image.name}`, rows.map((row, n) => similarCard(row, n + 1)));
    $("viewer").close();
    say(`${rows.length} images, most alike first`);
    $("results-panel").scrollIntoView({ block: "start" });
  } catch (error) {
    say(plain(error), true, "viewer-message");
  }
}));

$("viewer-delete").addEventListener("click", () => busy($("viewer-delete"), async () => {
  const image = current;
  if (!window.confirm(`Delete ${image.name} from the collection? This cannot be undone.`)) return;
  try {
    await call(`/api/images/${encodeURIComponent(image.id)}`, { method: "DELETE" });
  } catch (error) {
    if (error.status !== 404) {  // 404: already gone, which is what was asked
      say(plain(error), true, "viewer-message");
      return;
    }
  }
  document.querySelectorAll(`.card[data-id="${CSS.escape(image.id)}"]`).forEach((node) => node.remove());
  setGalleryCount(Math.max(0, Number($("gallery-title").dataset.count || 1) - 1));
  refreshCount();
  $("viewer").close();
  say(`Deleted ${image.name}`);
}));

$("viewer-add").addEventListener("click", () => busy($("viewer-add"), async () => {
  const image = current;
  try {
    const files = image.file ? [image.file] : [];
    if (files.length) await addFiles(files);
    else await addUrl(image.url);
    $("viewer").close();
  } catch (error) {
    say(plain(error), true, "viewer-message");
  }
}));

// ----- Adding and describing -----

function chosenFiles() {
  return Array.from($("file").files);
}

function tooLarge(file) {
  return file.size > limits.max_upload_bytes
    ? `${file.name} is ${megabytes(file.size)}: this server takes images up to ${megabytes(limits.max_upload_bytes)}.`
    : null;
}

async function addFiles(files) {
  const progress = $("progress");
  progress.max = files.length;
  progress.value = 0;
  progress.hidden = files.length < 2;
  let added = 0, already = 0;
  const failed = [];
  for (const file of files) { // one request per file: each is checked, embedded and stored on its own
    say(files.length > 1 ? `Adding ${progress.value + 1} of ${files.length}: ${file.name}…` : `Adding ${file.name}…`);
    const refusal = tooLarge(file); // checked here: the server would cut the upload short
    const form = new FormData();
    form.append("file", file);
    try {
      if (refusal) throw new ApiError(413, refusal);
      const result = await call("/api/images", { method: "POST", body: form });
      if (result.added) added += 1;
      else already += 1;
    } catch (error) {
      failed.push(error.status === 413 && refusal ? refusal : `${file.name}: ${plain(error)}`);
    }
    progress.value += 1;
  }
  progress.hidden = true;
  if (added) await showNewestInGallery(added);
  refreshCount();
  if (files.length === 1) {
    say(failed.length ? failed[0] : added ? `Added ${files[0].name}` : `${files[0].name} is already in the collection`,
      failed.length > 0);
    return;
  }
  const summary = `Added ${added} of ${files.length} images (${already} already in, ${failed.length} failed)`;
  say(failed.length ? `${summary}. ${failed.join(" ")}` : summary, failed.length > 0);
}

async function addUrl(url) {
  say("Fetching and adding the image…");
  const form = new FormData();
  form.append("url", url);
  const added = await call("/api/images", { method: "POST", body: form });
  if (added.added) await showNewestInGallery(1);
  refreshCount();
  say(added.added ? `Added ${added.source}` : `${added.source} is already in the collection`);
}

function describeChosen(file, url) {
  if (file) {
    const refusal = tooLarge(file);
    if (refusal) throw new ApiError(413, refusal);
    openViewer({ file, name: file.name, src: URL.createObjectURL(file), facts: `${fileSize(file.size)}, not in ` +
      "the collection" });
  } else {
    openViewer({ url, name: url, src: url, facts: "From the web, not in the collection" });
  }
}

$("image-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const action = event.submitter ? event.submitter.value : "describe";
  const button = $(action === "add" ? "add" : "describe");
  busy(button, async () => {
    const files = chosenFiles();
    const url = $("url").value.trim();
    try {
      if (!files.length && !url) throw new ApiError(400, "Choose or drop image files, or give a web address.");
      if (action === "describe") {
        describeChosen(files[0], url);
        if (files.length > 1) say("Describing the first chosen file");
      } else if (files.length) {
        await addFiles(files);
        clearFiles();
      } else {
        await addUrl(url);
        $("url").value = "";
      }
    } catch (error) {
      say(plain(error), true);
    }
  });
});

// A chosen file and a typed address are never both in the form: choosing one clears the other.
function showChosen() {
  const files = chosenFiles();
  $("drop-text").textContent = files.length === 1 ? files[0].name
    : files.length ? `${files.length} files chosen` : "Choose or drop images";
  $("clear-file").hidden = files.length === 0;
  if (files.length) $("url").value = "";
}

function clearFiles() {
  $("file").value = "";
  showChosen();
}

$("file").addEventListener("change", showChosen);
$("clear-file").addEventListener("click", clearFiles);
$("url").addEventListener("input", () => {
  if ($("url").value && chosenFiles().length) clearFiles();
});
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
$("more").addEventListener("click", () => busy($("more"), async () => {
  say("", false, "gallery-message");
  try {
    await loadGallery();
  } catch (error) {
    say(plain(error), true, "gallery-message"); // beside the button that failed
  }
}));
drawSharpWhenEnlarged($("viewer-image"));

async function start() {
  refreshCount();
  call("/api/limits").then((found) => { limits = found; }, () => {});
  try {
    await loadGallery();
  } catch (error) {
    $("gallery-empty").hidden = false;
    $("gallery-empty").textContent = plain(error);
  }
}

start();
