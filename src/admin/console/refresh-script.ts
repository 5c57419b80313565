/**
 * The console's only script (inline, under the page's nonce): every few
 * seconds it fetches the status as an HTML fragment from the edge itself and
 * swaps it in, pausing while the tab is hidden. When the session ends it
 * says so and stops, rather than reloading into a sign-in loop.
 */
export const REFRESH_SCRIPT = `(() => {
  const live = document.getElementById("live");
  const note = document.getElementById("live-note");
  if (!live || !note) return;
  const every = Number(live.dataset.every) * 1000 || 5000;
  let timer;
  let stopped = false;
  async function tick() {
    // "busy" keeps a visibility change from starting a second fetch while one is out.
    timer = "busy";
    if (document.hidden) {
      timer = undefined;
      return;
    }
    try {
      const res = await fetch(live.dataset.src, { headers: { Accept: "text/html" }, credentials: "same-origin", cache: "no-store", redirect: "error" });
      if (res.status === 401 || res.status === 403) {
        note.textContent = "Session ended: reload the page to sign in again.";
        stopped = true;
        timer = undefined;
        return;
      }
      if (res.ok) {
        live.innerHTML = await res.text();
        note.textContent = "Updated " + new Date().toLocaleTimeString() + "; refreshes every " + every / 1000 + " s.";
      } else {
        note.textContent = "Refresh failed (HTTP " + res.status + "); retrying.";
      }
    } catch {
      note.textContent = "The edge did not answer; retrying.";
    }
    timer = setTimeout(tick, every);
  }
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && !stopped && timer === undefined) tick();
  });
  timer = setTimeout(tick, every);
})();`;
