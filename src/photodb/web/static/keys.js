// Review with one key: "a" accepts and "r" rejects the first pending pair.
document.addEventListener("keydown", (event) => {
  if (event.target instanceof HTMLInputElement || event.ctrlKey || event.metaKey || event.altKey) return;
  const kind = { a: "accept", r: "reject" }[event.key];
  const form = kind && document.querySelector(`article.pair form.${kind}`);
  if (form) form.submit();
});
