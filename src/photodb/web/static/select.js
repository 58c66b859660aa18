// The person page: the toolbar's actions are offered once a face is ticked, and say how many.
(() => {
  const form = document.getElementById("faces-form");
  if (!form) return;
  const count = document.getElementById("selected-count");
  const target = document.getElementById("faces-move-to");
  const update = () => {
    const ticked = form.querySelectorAll('.tile input[type="checkbox"]:checked').length;
    count.textContent = ticked ? `${ticked} selected` : "Tick faces to act on them";
    document.getElementById("faces-not-button").disabled = ticked === 0;
    const move = document.getElementById("faces-move-button");
    if (move) move.disabled = ticked === 0 || !target.value;
  };
  form.addEventListener("change", update);
  update();
})();
