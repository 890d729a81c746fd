// The search page: a text search showing a grid of thumbnails with both scores, and a form that adds an image
// (upload or URL) to the index or shows its labels and caption. Everything goes through the JSON API (/docs).
"use strict";

const $ = (id) => document.getElementById(id);

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

function resultCard(row, rank) {
  const card = document.createElement("figure");
  card.className = "result";
  card.dataset.id = row.id;
  const image = document.createElement("img");
  image.src = `/api/images/${encodeURIComponent(row.id)}/file`;
  image.alt = row.source;
  image.loading = "lazy";
  const caption = document.createElement("figcaption");
  caption.innerHTML = `<b>${rank}.</b> log-likelihood <span class="log_likelihood"></span><br>` +
    `contrastive <span class="contrastive"></span><div class="source"></div>`;
  caption.querySelector(".log_likelihood").textContent = row.log_likelihood.toFixed(3);
  caption.querySelector(".contrastive").textContent = row.contrastive.toFixed(3);
  caption.querySelector(".source").textContent = row.source;
  caption.querySelector(".source").title = row.source;
  card.append(image, caption);
  return card;
}

$("search-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const params = new URLSearchParams({ q: $("query").value, k: $("k").value });
  say("Searching…");
  try {
    const rows = await call(`/search?${params}`);
    $("results").replaceChildren(...rows.map((row, n) => resultCard(row, n + 1)));
    say(rows.length ? `${rows.length} results, best first by caption log-likelihood` : "No images in the index yet");
  } catch (error) {
    say(error.message, true);
  }
});

function imageForm() {
  const form = new FormData();
  const file = $("file").files[0];
  if (file) form.append("file", file);
  else if ($("url").value) form.append("url", $("url").value);
  else throw new Error("choose a file or give a URL");
  return form;
}

function listItems(list, rows, text) {
  list.replaceChildren(...rows.map((row) => {
    const item = document.createElement("li");
    item.textContent = text(row);
    return item;
  }));
}

$("image-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const action = event.submitter ? event.submitter.value : "add";
  try {
    const form = imageForm();
    if (action === "add") {
      say("Adding…");
      const added = await call("/api/images", { method: "POST", body: form });
      say(added.added ? `Added ${added.source} as ${added.id}` : `Already in the index as ${added.id}`);
      refreshCount();
    } else {
      say("Describing…");
      form.append("labels", $("labels").value);
      const described = await call("/api/describe", { method: "POST", body: form });
      listItems($("captions"), described.captions, (c) => `${c.caption} (${c.log_likelihood.toFixed(2)})`);
      listItems($("label-list"), described.labels, (l) => `${l.label} (${l.score.toFixed(2)})`);
      const file = $("file").files[0];
      $("described-image").src = file ? URL.createObjectURL(file) : $("url").value;
      $("description").hidden = false;
      say("Labels best first; captions best first");
    }
  } catch (error) {
    say(error.message, true);
  }
});

refreshCount();
