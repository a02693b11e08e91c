// Live parts of a page: when the gateway says something changed
// (/ui/live, server-sent events), fetch the page again and replace the
// content of every element marked data-live. EventSource reconnects by
// itself, so pages stay live across a restart of the gateway.

const status = document.getElementById("live-status");

function say(text) {
  if (status) status.textContent = text;
}

/** The CSRF token of this session, for the scripts' state-changing requests. */
export function csrf() {
  const m = document.querySelector('meta[name="csrf-token"]');
  return m ? m.content : "";
}

async function refresh() {
  const resp = await fetch(location.href, { headers: { Accept: "text/html" }, credentials: "same-origin" });
  if (resp.redirected && new URL(resp.url).pathname === "/login") {
    say("Signed out: sign in again to see live updates.");
    return;
  }
  if (!resp.ok) return;
  const doc = new DOMParser().parseFromString(await resp.text(), "text/html");
  for (const el of document.querySelectorAll("[data-live][id]")) {
    const fresh = doc.getElementById(el.id);
    if (fresh && fresh.innerHTML !== el.innerHTML) {
      // Keep the focus on a button that is still there after the swap.
      const focused = document.activeElement && el.contains(document.activeElement) ? document.activeElement : null;
      const key = focused && focused.closest("form") ? focused.closest("form").getAttribute("action") : null;
      el.innerHTML = fresh.innerHTML;
      if (key) {
        const again = el.querySelector(`form[action="${CSS.escape(key)}"] button`);
        if (again) again.focus();
      }
    }
  }
}

if (document.querySelector("[data-live]")) {
  let pending = false;
  let again = false;
  const source = new EventSource("/ui/live");
  source.addEventListener("open", () => say("Live"));
  source.addEventListener("error", () => say("Reconnecting…"));
  // Every event, the first after (re)connecting included, refreshes: a
  // change between this page's rendering and the stream's start, or while
  // the gateway restarted, is not missed. Changes during a refresh queue
  // one more refresh.
  const run = () => {
    pending = true;
    refresh().catch(() => {}).finally(() => {
      pending = false;
      if (again) {
        again = false;
        run();
      }
    });
  };
  source.addEventListener("changed", () => {
    say("Live");
    if (pending) {
      again = true;
      return;
    }
    run();
  });
}
