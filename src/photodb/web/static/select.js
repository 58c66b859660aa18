// Forms of faces to tick (a person's faces, the unsorted ones): a button marked data-needs-faces
// is offered once a face is ticked (and, with data-needs-target, a person is chosen), and the
// form's [data-count] says how many are ticked.
// photodbSelect(root) wires the forms under root (lazy.js calls it for the sections it loads).
window.photodbSelect = (root) => root.querySelectorAll("form[data-select]").forEach((form) => {
  const count = form.querySelector("[data-count]");
  const target = form.querySelector('select[name="to_person_id"]');
  const idle = count ? count.textContent : "";
  const update = () => {
    const ticked = form.querySelectorAll('.tile input[type="checkbox"]:checked').length;
    if (count) count.textContent = ticked ? `${ticked} selected` : idle;
    form.querySelectorAll("[data-needs-faces]").forEach((button) => {
      button.disabled = ticked === 0 || ("needsTarget" in button.dataset && !(target && target.value));
    });
  };
  form.addEventListener("change", update);
  update();
});
window.photodbSelect(document);
