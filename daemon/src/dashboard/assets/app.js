// tweetpipe dashboard: fetches /api/summary for the chosen range and draws it.
// Every value is set with textContent, never as HTML.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  let range = { last: 3600 };
  let charts = {};
  let timer = null;

  function currentRange() {
    if (range.last) {
      const to = Math.floor(Date.now() / 1000) + 1;
      return { from: to - range.last, to: to };
    }
    return { from: range.from, to: range.to };
  }

  async function api(path, options) {
    const response = await fetch(path, Object.assign({ credentials: "same-origin" }, options || {}));
    if (response.status === 401) {
      showLogin();
      throw new Error("unauthorised");
    }
    return response;
  }

  function showLogin() {
    if (timer) { clearInterval(timer); timer = null; }
    $("app").hidden = true;
    $("login").hidden = false;
  }

  function showApp() {
    $("login").hidden = true;
    $("app").hidden = false;
    refresh();
    if (!timer) timer = setInterval(() => { if (range.last) refresh(); }, 10000);
  }

  $("login").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("login-error").textContent = "";
    const response = await fetch("/api/login", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ user: $("user").value, password: $("password").value }),
    });
    $("password").value = "";
    if (response.ok) { showApp(); return; }
    let message = "login failed";
    try { message = (await response.json()).error || message; } catch (_) {}
    $("login-error").textContent = message;
  });

  $("logout").addEventListener("click", async () => {
    await fetch("/api/logout", { method: "POST", credentials: "same-origin" });
    showLogin();
  });

  for (const button of document.querySelectorAll(".range button")) {
    button.addEventListener("click", () => {
      range = { last: Number(button.dataset.last) };
      for (const other of document.querySelectorAll(".range button")) other.classList.remove("active");
      button.classList.add("active");
      refresh();
    });
  }

  $("apply").addEventListener("click", () => {
    const from = Date.parse($("from").value), to = Date.parse($("to").value);
    if (isNaN(from) || isNaN(to) || from >= to) { $("range-label").textContent = "pick a from before a to"; return; }
    range = { from: Math.floor(from / 1000), to: Math.floor(to / 1000) };
    for (const other of document.querySelectorAll(".range button")) other.classList.remove("active");
    refresh();
  });

  const number = (value) => (value === null || value === undefined ? "–" : Number(value).toLocaleString("en"));
  const fixed = (value, digits) => (value === null || value === undefined ? "–" : Number(value).toFixed(digits));

  function row(table, cells, header) {
    const tr = document.createElement("tr");
    for (const [text, numeric] of cells) {
      const cell = document.createElement(header ? "th" : "td");
      cell.textContent = text;
      if (numeric) cell.className = "n";
      tr.appendChild(cell);
    }
    table.appendChild(tr);
  }

  function top(id, entries) {
    const table = $(id);
    table.replaceChildren();
    if (!entries.length) { row(table, [["none in this range", false]]); return; }
    for (const [key, count] of entries) row(table, [[key, false], [number(count), true]]);
  }

  // Gaps (empty buckets) are drawn as zero for counts and as breaks for sentiment.
  function fill(view, pick, empty) {
    const times = [], values = [];
    const byTime = new Map(view.series.map((point) => [point.t, point]));
    const start = Math.floor(view.from / view.step) * view.step;
    for (let t = start; t < view.to; t += view.step) {
      times.push(t);
      const point = byTime.get(t);
      values.push(point ? pick(point) : empty);
    }
    return [times, values];
  }

  function chart(id, options, data) {
    if (charts[id]) charts[id].destroy();
    const element = $(id);
    options.width = Math.max(300, element.clientWidth || 800);
    options.height = 220;
    charts[id] = new uPlot(options, data, element);
  }

  function draw(view) {
    const unit = view.step === 60 ? "minute" : "hour";
    $("posts-title").textContent = "Posts per " + unit;
    $("step").textContent = "(" + new Date(view.from * 1000).toLocaleString() + " – " + new Date(view.to * 1000).toLocaleString() + ")";
    for (const key of ["read", "kept", "dropped", "dead_lettered", "committed"]) {
      $("total-" + key).textContent = number(view.totals[key]);
    }
    $("total-sentiment").textContent = fixed(view.totals.sentiment, 3);
    const series = ["read", "kept", "dropped", "dead_lettered", "committed"];
    const colours = ["#457b9d", "#2a9d8f", "#e9c46a", "#e63946", "#6c757d"];
    let times = null;
    const columns = series.map((key) => {
      const [t, values] = fill(view, (point) => point[key], 0);
      times = t;
      return values;
    });
    chart("posts-chart", {
      series: [{}].concat(series.map((key, index) => ({ label: key.replace("_", "-"), stroke: colours[index], width: 2 }))),
      axes: [{}, { size: 60 }],
    }, [times].concat(columns));
    const hasSentiment = view.totals.sentiment_posts > 0;
    $("sentiment-chart").hidden = !hasSentiment;
    $("sentiment-empty").hidden = hasSentiment;
    if (hasSentiment) {
      const [t, mean] = fill(view, (point) => point.sentiment, null);
      chart("sentiment-chart", {
        series: [{}, { label: "mean compound", stroke: "#6a4c93", width: 2, spanGaps: false, points: { show: true, size: 6, fill: "#6a4c93" } }],
        scales: { y: { range: [-1, 1] } },
        axes: [{}, { size: 50 }],
      }, [t, mean]);
    }
    top("top-hashtags", view.hashtags.map(([k, v]) => ["#" + k, v]));
    top("top-mentions", view.mentions.map(([k, v]) => ["@" + k, v]));
    top("top-languages", view.languages);
    top("top-locations", view.locations);
    const plugins = $("plugins");
    plugins.replaceChildren();
    row(plugins, [["plugin", false], ["posts in", true], ["dropped", true], ["failed", true], ["drop rate", true], ["ms per batch", true], ["µs per post", true]], true);
    for (const plugin of view.plugins) {
      row(plugins, [
        [plugin.name, false], [number(plugin.posts), true], [number(plugin.dropped), true], [number(plugin.failed), true],
        [plugin.drop_rate === null ? "–" : (plugin.drop_rate * 100).toFixed(1) + " %", true],
        [fixed(plugin.mean_batch_ms, 2), true], [fixed(plugin.mean_post_us, 1), true],
      ]);
    }
    const latest = $("latest");
    latest.replaceChildren();
    row(latest, [["committed", false], ["user", false], ["lang", false], ["text", false], ["sentiment", true]], true);
    for (const post of view.latest) {
      row(latest, [
        [new Date(post.committed_at * 1000).toLocaleTimeString(), false], ["@" + post.user_name, false],
        [post.lang, false], [post.text, false], [fixed(post.sentiment, 3), true],
      ]);
    }
  }

  async function refresh() {
    const { from, to } = currentRange();
    try {
      const response = await api("/api/summary?from=" + from + "&to=" + to);
      if (!response.ok) { $("range-label").textContent = (await response.json()).error; return; }
      $("range-label").textContent = "";
      draw(await response.json());
      const status = await (await api("/api/status")).json();
      const list = $("status");
      list.replaceChildren();
      for (const check of status.checks) {
        const item = document.createElement("li");
        item.textContent = check;
        item.className = /unreachable|backing off|not running/.test(check) ? "bad" : "ok";
        list.appendChild(item);
      }
      document.body.dataset.loaded = String(to);
    } catch (error) {
      if (error.message !== "unauthorised") $("range-label").textContent = String(error);
    }
  }

  fetch("/api/session", { credentials: "same-origin" }).then((response) => (response.ok ? showApp() : showLogin()), showLogin);
})();
