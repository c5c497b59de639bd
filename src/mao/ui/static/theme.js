// The theme: the system's (prefers-color-scheme) unless the toggle chose one, kept in localStorage.
// Loaded in <head>, before the page paints, so a dark page does not flash light.
(function () {
  "use strict";
  var KEY = "mao-theme";
  var root = document.documentElement;
  function stored() {
    try { return localStorage.getItem(KEY); } catch (e) { return null; }
  }
  function apply(theme) {
    if (theme === "dark" || theme === "light") { root.setAttribute("data-theme", theme); }
    else { root.removeAttribute("data-theme"); }
  }
  function current() {
    var theme = root.getAttribute("data-theme");
    if (theme) { return theme; }
    return window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  }
  apply(stored());
  document.addEventListener("DOMContentLoaded", function () {
    var button = document.getElementById("theme-toggle");
    if (!button) { return; }
    button.setAttribute("aria-label", "Theme: " + current() + " (switch)");
    button.addEventListener("click", function () {
      var next = current() === "dark" ? "light" : "dark";
      apply(next);
      try { localStorage.setItem(KEY, next); } catch (e) { /* private mode: this page only */ }
      button.setAttribute("aria-label", "Theme: " + next + " (switch)");
    });
  });
})();
