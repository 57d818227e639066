// The page at "/": sends the plot to POST /v1/predict and draws the 24 probabilities.
// Plain script, no build step and no network use beyond this server's own API.
"use strict";

(function () {
  // The two example plots of the original system's README (tests/conftest.py: E1_PLOT, E2_PLOT).
  const EXAMPLES = {
    bottle:
      "who meets by fate ,  shall be sealed by fate .  theresa osborne is running along the beach " +
      "when she stumbles upon a bottle washed up on the shore .  inside is a message ,  reading " +
      "the letter she feels so moved and yet she felt as if she has violated someone ' s thoughts " +
      ".  in love with a man she has never met ,  theresa tracks down the author of the letter to " +
      "a small town in wilmington ,  two lovers with crossed paths .  but yet one can ' t let go of " +
      "their past .",
    billy:
      "the true story of billy hayes ,  an american college student who is caught smuggling drugs " +
      "out of turkey and thrown into prison .",
  };

  const $ = (id) => document.getElementById(id);
  const form = $("predict-form");
  const plot = $("plot");
  const title = $("title");
  const apiKey = $("api-key");
  const keyPanel = $("key-panel");
  const submit = $("submit");
  const errorBox = $("error");
  const status = $("status");
  const resultBody = $("result-body");
  const resultModel = $("result-model");
  const chart = $("chart");
  const count = $("plot-count");

  const numbers = new Intl.NumberFormat("en");
  let maxPlotChars = 20000; // replaced by GET /v1/limits when the server answers
  let thresholds = {}; // genre -> threshold, from GET /v1/model
  let infoLoaded = false;
  let busy = false;

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  // fetch with a time limit; a network failure or timeout becomes an ApiError with status 0.
  async function api(path, options = {}) {
    const timeoutMs = Number(form.dataset.timeoutMs) || 20000;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), timeoutMs);
    const headers = { Accept: "application/json", ...(options.headers || {}) };
    if (apiKey.value.trim()) headers["x-api-key"] = apiKey.value.trim();
    let response;
    try {
      response = await fetch(path, { ...options, headers, signal: controller.signal });
    } catch (err) {
      if (controller.signal.aborted) {
        throw new ApiError(0, "timeout",
          `The server did not answer within ${Math.round(timeoutMs / 1000)} seconds. ` +
          "It may be busy or stopped; try again in a moment.");
      }
      throw new ApiError(0, "unreachable",
        "Could not reach the server: it is not answering. Check that it is running and " +
        "that you are online, then try again.");
    } finally {
      clearTimeout(timer);
    }
    let body = null;
    try {
      body = await response.json();
    } catch (err) {
      body = null; // a proxy's HTML error page, an empty body...
    }
    if (!response.ok) {
      const detail = body && body.error ? body.error : {};
      throw new ApiError(response.status, detail.code || "http_" + response.status,
        detail.message || `The server answered with HTTP ${response.status}.`);
    }
    return body;
  }

  function showError(message) {
    errorBox.textContent = message;
    errorBox.hidden = false;
  }

  function clearError() {
    errorBox.textContent = "";
    errorBox.hidden = true;
    plot.removeAttribute("aria-invalid");
  }

  function invalidPlot(message) {
    plot.setAttribute("aria-invalid", "true");
    showError(message);
    plot.focus();
  }

  function updateCount() {
    const n = plot.value.length;
    count.textContent = numbers.format(n);
    const over = n > maxPlotChars;
    count.parentElement.classList.toggle("over", over);
    $("plot-over").hidden = !over;
  }

  function percent(p) {
    if (p > 0 && p < 0.001) return "<0.1%";
    return (p * 100).toFixed(p < 0.1 ? 1 : 0) + "%";
  }

  function describeModel(meta) {
    const parts = [`Model: ${meta.id}`];
    if (meta.kind) parts[0] += ` (${meta.kind})`;
    if (meta.created_at) parts.push("trained " + String(meta.created_at).slice(0, 10));
    const auc = meta.metrics && meta.metrics.cv && meta.metrics.cv.macro_auc;
    if (typeof auc === "number") parts.push("cross-validated macro AUC " + auc.toFixed(2));
    return parts.join(" · ");
  }

  function needsKey(err) {
    return err instanceof ApiError && (err.status === 401 || err.status === 403);
  }

  function askForKey() {
    keyPanel.open = true;
    showError("This server needs an API key. Enter it in the “API key” field and submit again.");
    apiKey.focus();
  }

  async function loadServerInfo() {
    const [limits, model] = await Promise.allSettled([api("v1/limits"), api("v1/model")]);
    if (limits.status === "fulfilled" && Number(limits.value.max_plot_chars) > 0) {
      maxPlotChars = Number(limits.value.max_plot_chars);
      $("plot-limit").textContent = numbers.format(maxPlotChars);
      updateCount();
    }
    if (model.status === "fulfilled") {
      thresholds = model.value.thresholds || {};
      $("model-info").textContent = describeModel(model.value);
    } else if (needsKey(model.reason)) {
      $("model-info").textContent = "Model: hidden until you enter the API key.";
      keyPanel.open = true;
    } else {
      $("model-info").textContent = "Model: unknown (" + model.reason.message + ")";
    }
    infoLoaded = limits.status === "fulfilled" && model.status === "fulfilled";
  }

  function bar(genre, probability, predicted) {
    const item = document.createElement("li");
    item.className = "bar" + (predicted ? " predicted" : "");
    item.dataset.genre = genre;
    item.dataset.probability = String(probability);

    const label = document.createElement("span");
    label.className = "bar-label";
    label.textContent = (predicted ? "✓ " : "") + genre;

    const track = document.createElement("span");
    track.className = "bar-track";
    track.setAttribute("aria-hidden", "true");
    const fill = document.createElement("span");
    fill.className = "bar-fill";
    fill.style.width = Math.max(0, Math.min(1, probability)) * 100 + "%";
    track.append(fill);
    const threshold = thresholds[genre];
    if (typeof threshold === "number") {
      const mark = document.createElement("span");
      mark.className = "bar-threshold";
      mark.style.left = Math.max(0, Math.min(1, threshold)) * 100 + "%";
      track.append(mark);
    }

    const value = document.createElement("span");
    value.className = "bar-value";
    value.textContent = percent(probability);

    item.append(label, track, value);
    if (predicted) {
      const hidden = document.createElement("span");
      hidden.className = "visually-hidden";
      hidden.textContent = ", predicted";
      item.append(hidden);
    }
    return item;
  }

  function render(response) {
    const prediction = response.predictions[0];
    const predicted = new Set(prediction.genres);
    const rows = Object.entries(prediction.probabilities).sort((a, b) => b[1] - a[1]);
    chart.replaceChildren(...rows.map(([g, p]) => bar(g, p, predicted.has(g))));
    const names = prediction.genres.join(", ");
    const name = title.value.trim();
    resultModel.textContent = `Model: ${response.model.id}` +
      (response.model.kind ? ` (${response.model.kind})` : "");
    resultBody.hidden = false;
    const noun = prediction.genres.length === 1 ? "genre" : "genres";
    status.textContent = (name ? `“${name}”: predicted ${noun}` : `Predicted ${noun}`) +
      `: ${names}.`;
    // On a phone the chart sits below the form: bring its top into view.
    const results = $("results");
    if (results.getBoundingClientRect().top > window.innerHeight) {
      results.scrollIntoView({ block: "start" });
    }
  }

  async function onSubmit(event) {
    event.preventDefault();
    if (busy) return;
    clearError();
    const text = plot.value;
    if (!text.trim()) {
      invalidPlot("Please enter a plot: the plot box is empty.");
      return;
    }
    if (text.length > maxPlotChars) {
      invalidPlot(`The plot is too long: ${numbers.format(text.length)} characters, and the ` +
        `limit is ${numbers.format(maxPlotChars)}. Shorten it and submit again.`);
      return;
    }
    busy = true;
    submit.setAttribute("aria-disabled", "true");
    submit.textContent = "Predicting…";
    status.textContent = "Predicting genres…";
    form.setAttribute("aria-busy", "true");
    try {
      if (!infoLoaded) await loadServerInfo().catch(() => {}); // e.g. after entering a key
      const item = { id: "1", plot: text };
      if (title.value.trim()) item.title = title.value.trim();
      const response = await api("v1/predict", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ items: [item] }),
      });
      render(response);
    } catch (err) {
      resultBody.hidden = true;
      status.textContent = "No result: see the message under the form.";
      if (needsKey(err)) {
        askForKey();
      } else if (err instanceof ApiError && err.status === 413) {
        invalidPlot("The plot is too long for the server: " + err.message);
      } else if (err instanceof ApiError && err.status === 422) {
        invalidPlot("The server could not use this plot: " + err.message);
      } else {
        showError(err.message);
      }
    } finally {
      busy = false;
      submit.removeAttribute("aria-disabled");
      submit.textContent = "Predict genres";
      form.removeAttribute("aria-busy");
    }
  }

  function loadExample(event) {
    const text = EXAMPLES[event.currentTarget.dataset.example];
    plot.value = text;
    title.value = ""; // the README's examples were scored on the plot alone
    clearError();
    updateCount();
    plot.focus();
  }

  form.addEventListener("submit", onSubmit);
  plot.addEventListener("input", () => {
    updateCount();
    if (plot.getAttribute("aria-invalid") && plot.value.trim()) clearError();
  });
  // Ctrl+Enter (Cmd+Enter on a Mac) submits from inside the text area.
  plot.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) form.requestSubmit();
  });
  for (const button of document.querySelectorAll("[data-example]")) {
    button.addEventListener("click", loadExample);
  }
  updateCount();
  loadServerInfo().catch(() => {});
})();
