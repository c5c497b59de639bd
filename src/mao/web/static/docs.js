// The API browser's start-up: the dashboard's theme (its toggle's choice, else the system's)
// at once, before the page paints, then Swagger UI on the document at data-openapi-url.
(function () {
  "use strict";
  var KEY = "mao-theme";
  var root = document.documentElement;
  var system = window.matchMedia ? window.matchMedia("(prefers-color-scheme: dark)") : null;
  function chosen() {
    try { return localStorage.getItem(KEY); } catch (e) { return null; }
  }
  function dark() {
    var theme = chosen();
    if (theme === "dark" || theme === "light") { return theme === "dark"; }
    return !!(system && system.matches);
  }
  function apply() { root.classList.toggle("dark-mode", dark()); }
  apply();
  if (system && system.addEventListener) { system.addEventListener("change", apply); }

  document.addEventListener("DOMContentLoaded", function () {
    var button = document.getElementById("theme-toggle");
    if (button) {
      button.setAttribute("aria-label", "Theme: " + (dark() ? "dark" : "light") + " (switch)");
      button.addEventListener("click", function () {
        var next = dark() ? "light" : "dark";
        try { localStorage.setItem(KEY, next); } catch (e) { /* private mode: this page only */ }
        root.classList.toggle("dark-mode", next === "dark");
        button.setAttribute("aria-label", "Theme: " + next + " (switch)");
      });
    }
    var target = document.getElementById("swagger-ui");
    if (!target || !window.SwaggerUIBundle) { return; }
    window.ui = window.SwaggerUIBundle({
      url: target.dataset.openapiUrl,
      dom_id: "#swagger-ui",
      layout: "BaseLayout",
      deepLinking: true,
      showExtensions: true,
      showCommonExtensions: true,
      validatorUrl: null,
      presets: [window.SwaggerUIBundle.presets.apis]
    });
  });
})();
