// Logs: follow the gateway's log live. /ui/logs/stream sends each new line
// as a server-sent event `line` with data `<level>|<line>` (or
// `skip|… n lines skipped`) and the line's id, so a reconnecting
// EventSource continues where it was, also after a restart of the gateway.
// Changing the level fetches the page at that level and follows from there.

// The page is sent with at most as many (PAGE_LOG_LINES in pages/logs.rs).
const MAX_LINES = 500;
const RANKS = { error: 0, warn: 1, info: 2, debug: 3, trace: 4 };

const pre = document.getElementById("log");
const status = document.getElementById("log-status");
const select = document.getElementById("log-level");
const form = document.getElementById("log-filter");
const empty = document.getElementById("log-empty");
const older = document.getElementById("log-older");

let level = (pre && pre.dataset.level) || "info";
let source = null;
let cursor = pre ? pre.dataset.cursor : "";
let queue = [];
let scheduled = false;
let retry = null;

function say(text) {
  if (status) status.textContent = text;
}

function atBottom() {
  return pre.scrollHeight - pre.scrollTop - pre.clientHeight < 24;
}

function toBottom() {
  pre.scrollTop = pre.scrollHeight;
}

function lineElement(kind, text) {
  const span = document.createElement("span");
  span.className = "lvl-" + kind;
  span.textContent = text + "\n";
  return span;
}

function flush() {
  scheduled = false;
  if (!queue.length) return;
  // Stick to the bottom unless the reader scrolled up.
  const stick = atBottom();
  const frag = document.createDocumentFragment();
  for (const [kind, text] of queue) frag.appendChild(lineElement(kind, text));
  queue = [];
  pre.appendChild(frag);
  while (pre.childElementCount > MAX_LINES) pre.firstElementChild.remove();
  if (empty) empty.hidden = true;
  if (stick) toBottom();
}

function schedule() {
  if (scheduled) return;
  scheduled = true;
  // A hidden tab gets no animation frames: the queue is bounded meanwhile.
  requestAnimationFrame(flush);
}

function onLine(ev) {
  if (ev.lastEventId) cursor = ev.lastEventId;
  const data = String(ev.data);
  const bar = data.indexOf("|");
  const kind = bar < 0 ? "info" : data.slice(0, bar);
  const text = bar < 0 ? data : data.slice(bar + 1);
  if (kind in RANKS && RANKS[kind] > RANKS[level]) return;
  queue.push([kind in RANKS ? kind : "skip", text]);
  if (queue.length > MAX_LINES) queue.splice(0, queue.length - MAX_LINES);
  schedule();
}

function follow() {
  if (retry) clearTimeout(retry);
  retry = null;
  if (source) source.close();
  const params = new URLSearchParams({ level });
  if (cursor) params.set("after", cursor);
  const es = new EventSource("/ui/logs/stream?" + params.toString());
  source = es;
  es.addEventListener("open", () => say("Following"));
  es.addEventListener("line", onLine);
  es.addEventListener("error", () => {
    if (source !== es) return;
    say("Reconnecting…");
    // EventSource retries by itself, unless the answer was not a stream
    // (e.g. the session expired): then try again in a while.
    if (es.readyState === EventSource.CLOSED) {
      retry = setTimeout(follow, 5000);
    }
  });
}

async function switchTo(next) {
  if (!(next in RANKS)) return;
  level = next;
  const url = new URL(location.href);
  url.searchParams.set("level", next);
  history.replaceState(null, "", url);
  try {
    const resp = await fetch(url, { headers: { Accept: "text/html" }, credentials: "same-origin" });
    if (!resp.ok || (resp.redirected && new URL(resp.url).pathname === "/login")) {
      location.assign(url);
      return;
    }
    const doc = new DOMParser().parseFromString(await resp.text(), "text/html");
    const fresh = doc.getElementById("log");
    if (!fresh) {
      location.assign(url);
      return;
    }
    queue = [];
    pre.replaceChildren(...Array.from(fresh.childNodes));
    pre.dataset.level = next;
    cursor = fresh.dataset.cursor || "";
    const freshEmpty = doc.getElementById("log-empty");
    if (empty) empty.hidden = !freshEmpty || freshEmpty.hidden;
    const freshOlder = doc.getElementById("log-older");
    if (older) {
      older.textContent = freshOlder ? freshOlder.textContent : "";
      older.hidden = !freshOlder || freshOlder.hidden;
    }
    toBottom();
    follow();
  } catch {
    location.assign(url);
  }
}

if (pre) {
  toBottom();
  follow();
  if (select) select.addEventListener("change", () => switchTo(select.value));
  if (form && select) {
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      switchTo(select.value);
    });
  }
}
