// The page at "/": sends the plot to POST /v1/predict and draws one probability per label of
// the model (the 24 genres by default, or a catalogue's own labels, as GET /v1/model lists them),
// and for the top labels the words that pushed each one up or down, highlighted in the plot as
// sent. The heading is the model's title when it has one. Label names come from the server and
// are only ever set as text (textContent, dataset), never parsed as HTML.
// Plain script, no build step and no network use beyond this server's own API.
"use strict";

(function () {
  // The course's 24 genres, in their order (moviegenre.GENRES): a model of exactly these is a
  // genre model; tests/test_web_page.py checks that this list is moviegenre.GENRES.
  const COURSE_GENRES = [
    "Action", "Adventure", "Animation", "Biography", "Comedy", "Crime", "Documentary", "Drama",
    "Family", "Fantasy", "Film-Noir", "History", "Horror", "Music", "Musical", "Mystery", "News",
    "Romance", "Sci-Fi", "Short", "Sport", "Thriller", "War", "Western",
  ];

  // The two example plots of the original system's README (moviegenre.examples.EXAMPLE_PLOTS),
  // with their films' titles: the title is one of the model's inputs, so an example sends both.
  const EXAMPLES = {
    bottle: {
      title: "Message in a Bottle",
      plot:
      "who meets by fate ,  shall be sealed by fate .  theresa osborne is running along the beach " +
      "when she stumbles upon a bottle washed up on the shore .  inside is a message ,  reading " +
      "the letter she feels so moved and yet she felt as if she has violated someone ' s thoughts " +
      ".  in love with a man she has never met ,  theresa tracks down the author of the letter to " +
      "a small town in wilmington ,  two lovers with crossed paths .  but yet one can ' t let go of " +
      "their past .",
    },
    billy: {
      title: "Midnight Express",
      plot:
      "the true story of billy hayes ,  an american college student who is caught smuggling drugs " +
      "out of turkey and thrown into prison .",
    },
  };
  const EXPLAIN_TOP = 3; // genres whose reasons are shown

  // The dataset's tokenised text ("billy hayes ,  an american ... can ' t let go") as a person
  // writes it: punctuation against its word, contractions joined, sentences capitalised. The
  // model splits words the same way either way; this is what the page shows and sends.
  function readable(text) {
    return text.replace(/\s+/g, " ").trim()
      .replace(/ ([,.;:!?)])/g, "$1")
      .replace(/\( /g, "(")
      .replace(/(\p{L}) ' (s|t|re|ve|ll|d|m)(?![\p{L}\p{N}])/gu, "$1'$2")
      .replace(/(?<![\p{L}\p{N}])i(?![\p{L}\p{N}'])/gu, "I")
      .replace(/(^|[.!?] )(\p{Ll})/gu, (_, before, letter) => before + letter.toUpperCase());
  }
  for (const example of Object.values(EXAMPLES)) example.plot = readable(example.plot);

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
  const chart = $("chart");
  const results = $("results");
  const reasonsNone = $("reasons-none");
  const reasonList = $("reason-list");
  const sentHeading = $("sent-heading");
  const sentTitle = $("sent-title");
  const sentPlot = $("sent-plot");
  const count = $("plot-count");

  const numbers = new Intl.NumberFormat("en");
  let maxPlotChars = 20000; // replaced by GET /v1/limits when the server answers
  let thresholds = new Map(); // label -> threshold, from GET /v1/model
  let infoLoaded = false;
  let busy = false;
  let shown = null; // {plot, title, explanation} of the result on screen
  // What the page calls the model's outputs: the 24 genres by default, "labels" for a model of
  // its own labels (describeLabels decides). Marked words in the page ([data-noun]) follow.
  let nouns = { one: "genre", many: "genres" };

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

  // The API names the place of a problem for a program ("items[0].plot (id 'page') holds no
  // letter or digit"); the page sent one item, so it names the field for a person instead
  // ("The plot holds no letter or digit").
  function forPerson(message) {
    const match = /^items\[0\]\.(\w+)(?: \(id '[^']*'\))?(:?) (.*)$/s.exec(message);
    if (!match) return message;
    const [, field, colon, reason] = match;
    const text = `The ${field}${colon} ${reason}`;
    return /[.!?]$/.test(text) ? text : text + ".";
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
    clearResults();
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

  // The heading and the lede follow the model: its title, if it has one, and its labels.
  function describeLabels(meta) {
    const labels = Array.isArray(meta.labels) ? meta.labels : [];
    const modelTitle = typeof meta.title === "string" ? meta.title.trim() : "";
    if (modelTitle) {
      $("page-title").textContent = modelTitle;
      document.title = modelTitle;
    }
    // The course's 24 genres (moviegenre.GENRES) name a model "genres"; any other label set, "labels".
    const names = labels.map((label) => (label && typeof label.name === "string" ? label.name : ""));
    const ownLabels = meta.labels_from || names.join("\n") !== COURSE_GENRES.join("\n");
    if (labels.length && ownLabels) {
      $("lede").textContent = "Paste a plot synopsis and see how likely each of the model’s " +
        `${numbers.format(labels.length)} labels is.`;
      useNouns({ one: "label", many: "labels" }, !modelTitle);
    }
  }

  // Every text of the page that names the model's outputs, in `words` ({one, many}); the heading
  // too where the model has no title of its own. Only ever set as text.
  function useNouns(words, heading) {
    nouns = words;
    const capital = (word) => word.charAt(0).toUpperCase() + word.slice(1);
    const forms = { genre: words.one, genres: words.many, Genres: capital(words.many) };
    for (const node of document.querySelectorAll("[data-noun]")) {
      if (node.dataset.noun in forms) node.textContent = forms[node.dataset.noun];
    }
    chart.setAttribute("aria-label", `Probability of each ${words.one}, most likely first`);
    if (!busy) submit.textContent = `Predict ${words.many}`;
    if (heading) document.title = $("page-title").textContent;
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
      const given = model.value.thresholds;
      thresholds = new Map(given && typeof given === "object" ? Object.entries(given) : []);
      describeLabels(model.value);
      $("model-info").textContent = describeModel(model.value);
    } else if (needsKey(model.reason)) {
      $("model-info").textContent = "Model: hidden until you enter the API key.";
      keyPanel.open = true;
    } else {
      $("model-info").textContent = "Model: unknown (" + model.reason.message + ")";
    }
    infoLoaded = limits.status === "fulfilled" && model.status === "fulfilled";
  }

  /** A new element with a class and, optionally, its text (always as text, never as HTML). */
  function element(tag, className, text) {
    const node = document.createElement(tag);
    node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // One bar: a label of the model (a genre, by default) and its probability.
  function bar(genre, probability, predicted) {
    const item = element("li", "bar" + (predicted ? " predicted" : ""));
    item.dataset.genre = genre;
    item.dataset.probability = String(probability);

    const label = element("span", "bar-label", (predicted ? "✓ " : "") + genre);
    label.title = genre; // the whole name, where a long one is cut short

    const track = element("span", "bar-track");
    track.setAttribute("aria-hidden", "true");
    const fill = element("span", "bar-fill");
    fill.style.width = Math.max(0, Math.min(1, probability)) * 100 + "%";
    track.append(fill);
    const threshold = thresholds.get(genre);
    if (typeof threshold === "number") {
      const mark = element("span", "bar-threshold");
      mark.style.left = Math.max(0, Math.min(1, threshold)) * 100 + "%";
      track.append(mark);
    }

    const value = element("span", "bar-value", percent(probability));

    item.append(label, track, value);
    if (predicted) {
      const hidden = element("span", "visually-hidden", ", predicted");
      item.append(hidden);
    }
    return item;
  }

  // --- reasons: the words that pushed each top genre up or down --------------------------------

  // A contribution is a change in the genre's score (a logit), which means little to a person;
  // the page shows each part's share of everything that moved the genre instead: the shown
  // words, the plot as a whole (a model with an embedding) and all the other words together.
  function shareText(share) {
    if (share > 0 && share < 0.005) return "<1%";
    return Math.round(share * 100) + "%";
  }

  function shareBar(share) {
    const track = element("span", "share-track");
    track.setAttribute("aria-hidden", "true");
    const fill = element("span", "share-fill");
    fill.style.width = Math.max(0, Math.min(1, share)) * 100 + "%";
    track.append(fill);
    return track;
  }

  // One part of a genre's reasons: a word (a `term` from the API), or a part without a word
  // ("the plot as a whole", "all other words"), with its share as a bar and a number.
  function partItem(genre, part, total) {
    const up = part.weight >= 0;
    const share = total > 0 ? Math.abs(part.weight) / total : 0;
    const item = element("li", "term " + (up ? "up" : "down") + (part.term ? "" : " whole"));
    if (part.term) {
      item.dataset.term = part.term;
      item.dataset.weight = String(part.weight);
      item.dataset.field = part.field || "";
    }
    item.dataset.share = String(share);

    const sign = element("span", "term-sign", up ? "▲" : "▼");
    sign.setAttribute("aria-hidden", "true");
    const word = element("span", "term-word", part.term || part.label);
    item.append(sign, word);
    const elsewhere = part.term && part.field && part.field !== "plot";
    if (elsewhere) {
      const where = element("span", "term-field", `in the ${part.field}`);
      where.setAttribute("aria-hidden", "true");
      item.append(where);
    }
    const value = element("span", "term-share", shareText(share));
    value.setAttribute("aria-hidden", "true");
    // What a screen reader says: "outlaw, raised Western: 31% of what moved it".
    const spoken = element("span", "visually-hidden",
      (elsewhere ? ` (in the ${part.field})` : "") +
      `, ${up ? "raised" : "lowered"} ${genre}: ${shareText(share)} of what moved it`);
    item.append(shareBar(share), value, spoken);
    return item;
  }

  function partList(genre, parts, total, up) {
    const row = element("div", "term-row");
    const heading = `${up ? "Words that raised" : "Words that lowered"} ${genre}`;
    const label = element("p", "term-row-label", heading + ":");
    label.setAttribute("aria-hidden", "true");
    const list = element("ul", "terms");
    list.setAttribute("aria-label", heading);
    const chosen = parts.filter((p) => (p.weight >= 0) === up);
    list.append(...chosen.map((p) => partItem(genre, p, total)));
    if (!chosen.length) list.append(element("li", "term-none", "none"));
    row.append(label, list);
    return row;
  }

  function reasonCard(entry, probability, index) {
    const card = element("li", "reason");
    card.dataset.genre = entry.genre;

    const head = element("label", "reason-head");
    const pick = document.createElement("input");
    pick.type = "radio";
    pick.name = "highlight-genre";
    pick.value = entry.genre;
    pick.checked = index === 0;
    pick.addEventListener("change", () => highlightFor(entry.genre));
    const name = element("span", "reason-genre", entry.genre);
    const value = element("span", "reason-probability", percent(probability));
    head.append(pick, name, " ", value);

    const number = (x) => typeof x === "number" && Number.isFinite(x);
    const parts = (Array.isArray(entry.terms) ? entry.terms : [])
      .filter((t) => t && typeof t.term === "string" && t.term.trim() && number(t.weight));
    // Parts without a word of their own, last in their list, after the words.
    if (number(entry.embedding) && entry.embedding !== 0) {
      parts.push({ label: "the plot as a whole", weight: entry.embedding });
    }
    if (number(entry.other_terms) && entry.other_terms !== 0) {
      parts.push({ label: "all other words together", weight: entry.other_terms });
    }
    const total = parts.reduce((sum, p) => sum + Math.abs(p.weight), 0);
    card.append(head, partList(entry.genre, parts, total, true),
      partList(entry.genre, parts, total, false));
    return card;
  }

  function escapeRegExp(text) {
    return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  }

  // Where `term` occurs in `text` as whole words (any case; a term of several words with any
  // spacing between them).
  function occurrences(text, term) {
    const words = term.trim().split(/\s+/).map(escapeRegExp).join("\\s+");
    const pattern = new RegExp(`(?<![\\p{L}\\p{N}])${words}(?![\\p{L}\\p{N}])`, "giu");
    return Array.from(text.matchAll(pattern), (m) => [m.index, m.index + m[0].length]);
  }

  // Fill `container` with `text`, each occurrence of a term wrapped in a <mark>. Where terms
  // overlap ("true story" and "story") the stronger one is marked. Only text nodes carry the
  // user's text: it is never parsed as HTML.
  function highlightText(container, text, terms) {
    const taken = new Uint8Array(text.length);
    const marks = [];
    const strongestFirst = terms.filter((t) => typeof t.term === "string" && t.term.trim())
      .sort((a, b) => Math.abs(b.weight) - Math.abs(a.weight));
    for (const term of strongestFirst) {
      for (const [start, end] of occurrences(text, term.term)) {
        if (taken.subarray(start, end).some(Boolean)) continue;
        taken.fill(1, start, end);
        marks.push({ start, end, term });
      }
    }
    marks.sort((a, b) => a.start - b.start);
    const nodes = [];
    let last = 0;
    for (const { start, end, term } of marks) {
      if (start > last) nodes.push(text.slice(last, start));
      const mark = element("mark", "hl " + (term.weight >= 0 ? "up" : "down"));
      mark.dataset.term = term.term;
      mark.dataset.weight = String(term.weight);
      mark.textContent = text.slice(start, end);
      nodes.push(mark);
      last = end;
    }
    if (last < text.length) nodes.push(text.slice(last));
    container.replaceChildren(...nodes);
  }

  function highlightFor(genre) {
    if (!shown) return;
    const entry = shown.explanation.find((e) => e.genre === genre);
    const terms = entry && Array.isArray(entry.terms) ? entry.terms : [];
    sentHeading.textContent = entry ? `The plot you sent, with the words for ${genre} highlighted`
      : "The plot you sent";
    for (const card of reasonList.children) {
      card.classList.toggle("selected", card.dataset.genre === genre);
    }
    highlightText(sentPlot, shown.plot, terms.filter((t) => t.field === "plot"));
    sentTitle.hidden = !shown.title;
    if (shown.title) {
      const label = element("span", "sent-label", "Title: ");
      const text = document.createElement("span");
      highlightText(text, shown.title, terms.filter((t) => t.field === "title"));
      sentTitle.replaceChildren(label, text);
    }
  }

  function renderReasons(prediction, sent) {
    const explanation = (Array.isArray(prediction.explanation) ? prediction.explanation : [])
      .filter((e) => e && typeof e.genre === "string")
      .slice(0, EXPLAIN_TOP);
    shown = { plot: sent.plot, title: sent.title, explanation };
    reasonList.replaceChildren(...explanation.map((entry, i) =>
      reasonCard(entry, prediction.probabilities[entry.genre] ?? entry.probability, i)));
    $("reasons").hidden = !explanation.length;
    reasonsNone.hidden = explanation.length > 0;
    $("hl-legend").hidden = !explanation.length;
    highlightFor(explanation.length ? explanation[0].genre : null);
  }

  // After any failure: a message about this plot never sits beside the result for another.
  function clearResults() {
    status.textContent = "No result: see the message under the form.";
    shown = null;
    resultBody.hidden = true;
    chart.replaceChildren();
    reasonList.replaceChildren();
    sentPlot.replaceChildren();
    sentTitle.replaceChildren();
    sentTitle.hidden = true;
  }

  function render(response, sent) {
    const prediction = response.predictions[0];
    const predicted = new Set(prediction.genres);
    const rows = Object.entries(prediction.probabilities).sort((a, b) => b[1] - a[1]);
    chart.replaceChildren(...rows.map(([g, p]) => bar(g, p, predicted.has(g))));
    // Room for longer label names than the 24 genres' (a model's own labels), within limits.
    const longest = Math.max(0, ...rows.map(([g]) => Array.from(g).length));
    if (longest > 13) {
      chart.style.setProperty("--label-width", `${Math.min(longest, 30) * 0.6 + 1.5}em`);
    } else {
      chart.style.removeProperty("--label-width");
    }
    renderReasons(prediction, sent);
    const names = prediction.genres.join(", ");
    const name = sent.title;
    // The model is named once, at the top; this fills it in where GET /v1/model was refused.
    const info = $("model-info");
    if (response.model && !info.textContent.includes(response.model.id)) {
      info.textContent = describeModel(response.model);
    }
    resultBody.hidden = false;
    const noun = prediction.genres.length === 1 ? nouns.one : nouns.many;
    status.textContent = (name ? `“${name}”: predicted ${noun}` : `Predicted ${noun}`) +
      `: ${names || "none above its threshold"}.`;
    // On a phone the results sit below the form: bring their top into view.
    if (results.getBoundingClientRect().top > window.innerHeight) {
      results.scrollIntoView({ block: "start" });
    }
  }

  async function predictOne(item) {
    const send = (explain) => api("v1/predict", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(explain ? { items: [item], explain: true, explain_top: EXPLAIN_TOP }
        : { items: [item] }),
    });
    try {
      return await send(true);
    } catch (err) {
      // A model kind without a linear part gives no reasons; its genres are still worth showing.
      if (err instanceof ApiError && err.code === "not_explainable") return send(false);
      throw err;
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
    status.textContent = `Predicting ${nouns.many}…`;
    form.setAttribute("aria-busy", "true");
    results.setAttribute("aria-busy", "true"); // one announcement, once the result is complete
    try {
      if (!infoLoaded) await loadServerInfo().catch(() => {}); // e.g. after entering a key
      const sent = { plot: text, title: title.value.trim() };
      const item = { id: "page", plot: sent.plot };
      if (sent.title) item.title = sent.title;
      render(await predictOne(item), sent);
    } catch (err) {
      clearResults();
      if (needsKey(err)) {
        askForKey();
      } else if (err instanceof ApiError && err.status === 413) {
        const said = forPerson(err.message);
        invalidPlot(said === err.message ? "The plot is too long for the server: " + said : said);
      } else if (err instanceof ApiError && err.status === 422) {
        invalidPlot(forPerson(err.message));
      } else {
        showError(err.message);
      }
    } finally {
      busy = false;
      submit.removeAttribute("aria-disabled");
      submit.textContent = `Predict ${nouns.many}`;
      form.removeAttribute("aria-busy");
      results.removeAttribute("aria-busy");
    }
  }

  function loadExample(event) {
    const example = EXAMPLES[event.currentTarget.dataset.example];
    plot.value = example.plot;
    title.value = example.title;
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
