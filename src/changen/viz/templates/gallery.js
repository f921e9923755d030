"use strict";
const buttons = document.querySelectorAll("button[data-filter]");
function show(kind) {
  let visible = 0;
  for (const card of document.querySelectorAll(".card")) {
    const on = kind === "all" || card.dataset.events.split(" ").includes(kind);
    card.hidden = !on;
    if (on) visible += 1;
  }
  document.getElementById("visible").textContent = visible;
  buttons.forEach((b) => b.classList.toggle("active", b.dataset.filter === kind));
}
buttons.forEach((b) => b.addEventListener("click", () => show(b.dataset.filter)));
show(location.hash.slice(1) || "all");
