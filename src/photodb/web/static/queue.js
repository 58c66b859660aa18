// The unnamed queue: Enter names (the form), Esc skips, Delete in the empty name box hides.
(() => {
  const box = document.getElementById("queue-name");
  if (!box) return;
  box.focus();
  box.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.preventDefault();
      window.location.assign(document.getElementById("queue-skip").href);
    } else if (event.key === "Delete" && box.value === "") {
      event.preventDefault();
      document.getElementById("queue-hide-form").submit();
    }
  });
})();
