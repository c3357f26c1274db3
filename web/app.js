// web/app.js: sends the review to the sentiment API (POST {"review": ...}) and shows the verdict, its probability
// and the review with its deciding words highlighted. Every text goes into the page through textContent, never HTML.
"use strict";

(function () {
  const MAX_REVIEW_BYTES = 20000; // the relay's MAX_REVIEW_BYTES default; checked here so no request is wasted
  const TIMEOUT_MS = 15000; // API Gateway gives up at 29 s; a visitor should hear from us well before
  const UNCERTAIN = [0.4, 0.6]; // probabilities in this band are shown as "Uncertain — leaning ..."

  const $ = (id) => document.getElementById(id);
  const form = $("review-form");
  const input = $("review");
  const button = $("submit");
  const status = $("status");
  const counter = $("counter");
  const errorBox = $("error");
  const result = $("result");
  const encoder = new TextEncoder();
  let busy = false;

  const LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "[::1]"];

  /** The API's URL: ?api=URL (on a page served from this machine), else <meta name="sentiment-api">,
   *  else same-origin /predict. A public page ignores no setting silently: it refuses ?api= outright,
   *  since a link could otherwise send a visitor's review to any server it names. */
  function apiUrl() {
    const fromQuery = new URLSearchParams(window.location.search).get("api");
    if (fromQuery && !LOOPBACK_HOSTS.includes(window.location.hostname)) {
      throw new Error("?api= works only on a page served from this machine; set the sentiment-api meta tag");
    }
    const meta = document.querySelector('meta[name="sentiment-api"]');
    const chosen = (fromQuery || (meta && meta.content) || "").trim();
    if (!chosen) return "/predict";
    const url = new URL(chosen, window.location.href);
    if (url.protocol !== "http:" && url.protocol !== "https:") throw new Error("the API address must be http(s)");
    return url.href;
  }

  function byteLength(text) {
    return encoder.encode(text).length;
  }

  function updateCounter() {
    const text = input.value;
    const bytes = byteLength(text);
    const characters = Array.from(text).length;
    counter.textContent =
      characters.toLocaleString("en-US") + " characters · " +
      bytes.toLocaleString("en-US") + " / " + MAX_REVIEW_BYTES.toLocaleString("en-US") + " bytes";
    counter.classList.toggle("over", bytes > MAX_REVIEW_BYTES);
  }

  function clearResult() {
    result.hidden = true;
    $("verdict").textContent = "";
    $("verdict").className = "verdict";
    $("probability").textContent = "";
    $("highlighted").replaceChildren();
    $("top-words").replaceChildren();
  }

  function showError(message) {
    clearResult();
    errorBox.textContent = message;
    errorBox.hidden = false;
  }

  function clearError() {
    errorBox.hidden = true;
    errorBox.textContent = "";
  }

  function setBusy(on) {
    busy = on;
    button.disabled = on;
    form.setAttribute("aria-busy", on ? "true" : "false");
    status.textContent = on ? "Judging…" : "";
  }

  function percent(p) {
    return (p * 100).toFixed(1) + " %";
  }

  /** The verdict as {label, probability, words, contributions}, or null when `data` is not one. */
  function validVerdict(data) {
    if (!data || typeof data !== "object" || Array.isArray(data)) return null;
    const { label, probability, top_words: words, contributions } = data;
    if (label !== "positive" && label !== "negative" && label !== "unknown") return null;
    if (typeof probability !== "number" || !Number.isFinite(probability) || probability < 0 || probability > 1) return null;
    // The model says positive exactly when P(positive) >= 0.5, and "unknown" (no word it knows) with 0.5:
    // an answer that contradicts itself is not shown.
    if (label === "unknown" ? probability !== 0.5 : (label === "positive") !== (probability >= 0.5)) return null;
    if (!Array.isArray(words) || !Array.isArray(contributions)) return null;
    for (const item of words) {
      if (!item || typeof item.word !== "string" || !isNumber(item.contribution)) return null;
    }
    for (const item of contributions) {
      if (!item || typeof item.token !== "string" || !isNumber(item.contribution) || !isSpan(item.span)) return null;
    }
    return { label, probability, words, contributions };
  }

  function isNumber(value) {
    return typeof value === "number" && Number.isFinite(value);
  }

  function isSpan(span) {
    return Array.isArray(span) && span.length === 2 && Number.isInteger(span[0]) && Number.isInteger(span[1]) &&
      span[0] >= 0 && span[0] <= span[1];
  }

  /**
   * The review re-displayed exactly as typed, each token that moved the verdict marked where the model
   * says it stands (its span); the model's own deciding words listed below. Nothing here re-tokenizes.
   * Spans count UTF-16 code units, as JavaScript strings do: the server counts code points, so the text is
   * walked by code point.
   */
  function renderHighlighted(review, contributions, words) {
    const characters = Array.from(review); // code points
    const marks = contributions
      .filter((item) => item.contribution !== 0 && item.span[1] <= characters.length && item.span[0] < item.span[1])
      .sort((a, b) => a.span[0] - b.span[0]);
    const strongest = Math.max(1e-9, ...marks.map((item) => Math.abs(item.contribution)));
    const container = $("highlighted");
    container.replaceChildren();
    let position = 0;
    for (const { contribution, span } of marks) {
      if (span[0] < position) continue; // overlapping spans: the first one keeps the characters
      if (span[0] > position) container.append(document.createTextNode(characters.slice(position, span[0]).join("")));
      const mark = document.createElement("mark");
      mark.className = "mark " + (contribution > 0 ? "pos" : "neg");
      mark.style.setProperty("--strength", String(Math.min(1, Math.abs(contribution) / strongest)));
      mark.title = (contribution > 0 ? "towards positive " : "towards negative ") + contribution.toFixed(2);
      mark.textContent = characters.slice(span[0], span[1]).join("");
      container.append(mark);
      position = span[1];
    }
    if (position < characters.length) container.append(document.createTextNode(characters.slice(position).join("")));
    const list = $("top-words");
    list.replaceChildren();
    for (const { word, contribution } of words) {
      const item = document.createElement("li");
      item.textContent = word + " (" + (contribution > 0 ? "+" : "") + contribution.toFixed(2) + ", " +
        (contribution > 0 ? "positive" : "negative") + ")";
      list.append(item);
    }
  }

  function showVerdict(review, verdict) {
    clearError();
    const heading = $("verdict");
    const { label, probability } = verdict;
    if (label === "unknown") {
      heading.textContent = "Can't tell";
      heading.className = "verdict unknown";
      $("probability").textContent = "None of these words is one the model learned from movie reviews, " +
        "so it gives no verdict. Try a sentence about the film.";
      renderHighlighted(review, [], []);
      result.hidden = false;
      return;
    }
    const uncertain = probability > UNCERTAIN[0] && probability < UNCERTAIN[1];
    heading.textContent = uncertain ? "Uncertain — leaning " + label : label.toUpperCase();
    heading.className = "verdict " + (uncertain ? "uncertain" : label);
    $("probability").textContent = "Probability positive: " + percent(probability) +
      (label === "negative" ? " (negative: " + percent(1 - probability) + ")" : "");
    renderHighlighted(review, verdict.contributions, verdict.words);
    result.hidden = false;
  }

  async function errorMessage(response) {
    let message = "";
    try {
      const body = await response.json();
      if (body && typeof body.message === "string") message = body.message;
    } catch (_) {
      // not JSON: the status alone has to do
    }
    return "The sentiment service failed (HTTP " + response.status + ")" + (message ? ": " + message : ".");
  }

  async function submit() {
    if (busy) return;
    const review = input.value;
    clearError();
    clearResult();
    if (!review.trim()) {
      showError("Type or paste a review first: the box is empty.");
      input.focus();
      return;
    }
    const bytes = byteLength(review);
    if (bytes > MAX_REVIEW_BYTES) {
      showError("The review is too long: " + bytes.toLocaleString("en-US") + " bytes of UTF-8, at most " +
        MAX_REVIEW_BYTES.toLocaleString("en-US") + " are accepted. Shorten it and try again.");
      input.focus();
      return;
    }
    let url;
    try {
      url = apiUrl();
    } catch (error) {
      showError("The page is misconfigured: " + error.message + ".");
      return;
    }
    setBusy(true);
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), TIMEOUT_MS);
    try {
      const response = await fetch(url, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ review }),
        signal: controller.signal,
      });
      if (!response.ok) {
        showError(await errorMessage(response));
        return;
      }
      let data;
      try {
        data = await response.json();
      } catch (_) {
        data = null;
      }
      const verdict = validVerdict(data);
      if (!verdict) {
        showError("The sentiment service answered something that is not a verdict. Try again later.");
        return;
      }
      showVerdict(review, verdict);
    } catch (error) {
      showError(error && error.name === "AbortError"
        ? "The sentiment service did not answer within " + TIMEOUT_MS / 1000 + " seconds. Try again."
        : "Could not reach the sentiment service. Check your connection and try again.");
    } finally {
      clearTimeout(timer);
      setBusy(false);
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submit();
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      submit();
    }
  });
  input.addEventListener("input", updateCounter);
  for (const example of document.querySelectorAll(".example")) {
    example.addEventListener("click", () => {
      if (busy) return; // the box must keep showing the review whose verdict is on its way
      input.value = example.textContent.trim();
      updateCounter();
      submit();
    });
  }
  updateCounter();
})();
