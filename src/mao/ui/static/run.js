// The run page, live: statuses and log lines from /ui/runs/{id}/events (Server-Sent Events)
// until the run ends; then the summary (digests, commits) is fetched once. While the reader
// follows the end, the log keeps its last data-page-lines lines: older ones are dropped and
// the link at its top loads them again.
(function () {
  "use strict";
  var page = document.getElementById("run");
  if (!page || page.dataset.active !== "true" || !window.EventSource) { return; }
  var log = document.getElementById("log");
  var live = document.getElementById("live");
  var pageLines = parseInt(log.dataset.pageLines, 10) || 0;
  var source = new EventSource(page.dataset.events);

  function dropWithNewline(node) {
    var next = node.nextSibling;
    if (next && next.nodeType === Node.TEXT_NODE) { log.removeChild(next); }
    log.removeChild(node);
  }
  function earlierLink(before) {
    var old = log.querySelector("a.earlier");
    if (old) { dropWithNewline(old); }
    var link = document.createElement("a");
    link.className = "earlier muted";
    link.href = "/ui/runs/" + log.dataset.run + "?before=" + before;
    link.setAttribute("hx-get", "/ui/runs/" + log.dataset.run + "/log?before=" + before);
    link.setAttribute("hx-target", "this");
    link.setAttribute("hx-swap", "outerHTML");
    link.textContent = "\u2191 earlier lines";
    log.insertBefore(document.createTextNode("\n"), log.firstChild);
    log.insertBefore(link, log.firstChild);
    if (window.htmx) { window.htmx.process(link); }
  }
  function trim() {
    if (!pageLines) { return; }
    var rows = log.querySelectorAll(":scope > span.line");
    var extra = rows.length - pageLines;
    if (extra <= 0) { return; }
    for (var i = 0; i < extra; i++) { dropWithNewline(rows[i]); }
    earlierLink(rows[extra].dataset.id);
  }

  function badge(element, status) {
    if (!element) { return; }
    element.textContent = status;
    element.className = element.className.replace(/\bst-[a-z_]+/g, "").trim() + " st-" + status;
  }
  function data(event) { return JSON.parse(event.data); }

  source.addEventListener("run", function (event) {
    badge(document.getElementById("run-status"), data(event).status);
  });
  source.addEventListener("step", function (event) {
    var step = data(event);
    var rows = document.querySelectorAll("#steps tr[data-step]");
    for (var i = 0; i < rows.length; i++) {
      if (rows[i].dataset.step !== step.name) { continue; }
      badge(rows[i].querySelector(".step-status"), step.status);
      if (step.duration !== null && step.duration !== undefined) {
        rows[i].querySelector(".step-duration").textContent = step.duration.toFixed(1) + " s";
      }
    }
  });
  source.addEventListener("line", function (event) {
    var line = data(event);
    var atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    var row = document.createElement("span");
    row.className = "line";
    row.dataset.id = event.lastEventId;
    var step = document.createElement("span");
    step.className = "step";
    step.textContent = line.step || "run";
    row.appendChild(step);
    row.appendChild(document.createTextNode(" " + line.line));
    log.appendChild(row);
    log.appendChild(document.createTextNode("\n"));
    if (atBottom) {
      trim();
      log.scrollTop = log.scrollHeight;
    }
  });
  source.addEventListener("end", function (event) {
    source.close();
    var end = data(event);
    badge(document.getElementById("run-status"), end.status);
    if (live) { live.textContent = ""; }
    var cancel = document.getElementById("cancel");
    if (cancel) { cancel.remove(); }
    page.dataset.active = "false";
    if (window.htmx) {
      window.htmx.ajax("GET", page.dataset.summary, { target: "#run-summary", swap: "outerHTML" });
    }
  });
  source.addEventListener("error", function () {
    // EventSource reconnects by itself, sending the last line's id: nothing is lost or repeated.
    if (live && source.readyState !== EventSource.CLOSED) { live.textContent = "reconnecting…"; }
  });
  source.addEventListener("open", function () {
    if (live) { live.textContent = "live"; }
  });
})();
