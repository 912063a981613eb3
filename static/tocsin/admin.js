// Copy buttons: <button data-copy-target="ID"> copies the text of the element with that id.
"use strict";
document.addEventListener("click", function (event) {
  const button = event.target.closest("[data-copy-target]");
  if (!button) {
    return;
  }
  event.preventDefault();
  const source = document.getElementById(button.dataset.copyTarget);
  const text = source.textContent;
  const done = function () {
    const label = button.textContent;
    button.textContent = "Copied";
    setTimeout(function () { button.textContent = label; }, 1500);
  };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done);
    return;
  }
  // Plain-HTTP deployments have no Clipboard API; fall back to a selected textarea.
  const area = document.createElement("textarea");
  area.value = text;
  document.body.appendChild(area);
  area.select();
  document.execCommand("copy");
  area.remove();
  done();
});
