// The people page loads its slower parts after the page itself: each slot is replaced by the first
// section of the page it names (data-src), the same HTML that page shows on its own.
document.querySelectorAll("[data-src]").forEach(async (slot) => {
  const response = await fetch(slot.dataset.src, { credentials: "same-origin" });
  if (!response.ok) return;
  const page = new DOMParser().parseFromString(await response.text(), "text/html");
  const section = page.querySelector("main > section");
  if (!section) return;
  slot.replaceWith(document.adoptNode(section));
  if (window.photodbSelect) window.photodbSelect(section);
});
