// The Chat page: talk to an agent as the web chat user "ui" over /api/ws
// (the session cookie authenticates it; see docs/protocol.md). The answer
// streams into its bubble; tool calls and pending approvals of this session
// come from the event bus (events.subscribe) and show as cards.

import { render } from "./markdown.js";

const USER = "ui";
const PAINT_MS = 40;
const $ = (id) => document.getElementById(id);

const root = $("chat");
const conversation = $("conversation");
const form = $("chat-form");
const input = $("chat-message");
const sendButton = $("chat-send");
const stopButton = $("chat-stop");
const newButton = $("chat-new");
const agentSelect = $("chat-agent");
const status = $("chat-status");

const agent = root.dataset.agent;
let sessionKey = root.dataset.sessionKey;

let socket = null;
let nextId = 1;
const waiting = new Map(); // request id -> { resolve, reject }
let backoff = 1000;
let failures = 0;

// The running turn: { messageId, bubble, body, text, painted }.
let turn = null;
const toolCards = new Map(); // tool call id -> card

// ---- elements

function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

function nearBottom() {
  return conversation.scrollHeight - conversation.scrollTop - conversation.clientHeight < 48;
}

/** Add an item to the conversation, keeping the view at the bottom if it was. */
function add(item, before = null) {
  const stick = nearBottom();
  conversation.insertBefore(item, before);
  if (stick) conversation.scrollTop = conversation.scrollHeight;
}

function message(kind, who, text) {
  const li = el("li", `msg ${kind}`);
  li.append(el("p", "who", who));
  const body = el("div", "body");
  if (kind === "assistant") body.append(render(text));
  else body.textContent = text;
  li.append(body);
  return li;
}

/** Where cards of the running turn go: above its answer, which stays last. */
function cardPlace() {
  return turn && turn.bubble.isConnected ? turn.bubble : null;
}

function pretty(json) {
  try {
    return JSON.stringify(JSON.parse(json), null, 2);
  } catch {
    return String(json ?? "");
  }
}

// ---- the socket

function say(text) {
  status.textContent = text;
}

function request(method, params) {
  return new Promise((resolve, reject) => {
    if (!socket || socket.readyState !== WebSocket.OPEN) {
      reject(Object.assign(new Error("Not connected to the gateway: wait for “Connected” and try again."), { code: "offline" }));
      return;
    }
    const id = nextId++;
    waiting.set(id, { resolve, reject });
    socket.send(JSON.stringify({ id, method, params }));
  });
}

function connect() {
  const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/api/ws");
  socket = ws;
  ws.addEventListener("open", () => {
    backoff = 1000;
    failures = 0;
    say("Connected");
    request("events.subscribe", {}).catch((e) => say(`Connected, without live tool calls: ${e.message}`));
  });
  ws.addEventListener("message", (ev) => {
    let frame;
    try {
      frame = JSON.parse(ev.data);
    } catch {
      return;
    }
    if (frame.type === "response") answered(frame);
    else if (frame.type === "event") happened(frame.event, frame.data || {});
  });
  ws.addEventListener("close", () => {
    if (socket !== ws) return;
    socket = null;
    for (const { reject } of waiting.values()) {
      reject(Object.assign(new Error("The connection to the gateway was lost."), { code: "offline" }));
    }
    waiting.clear();
    if (turn) {
      endTurn("The connection to the gateway was lost while the answer came; reload the page to see it in the history.");
    }
    failures++;
    say(failures > 3 ? "Reconnecting… (if this lasts, reload the page: you may have been signed out)" : "Reconnecting…");
    setTimeout(connect, backoff);
    backoff = Math.min(backoff * 2, 10000);
  });
}

function answered(frame) {
  const w = waiting.get(frame.id);
  if (!w) return;
  waiting.delete(frame.id);
  if (frame.ok) w.resolve(frame.result);
  else w.reject(Object.assign(new Error(frame.error?.message || "The gateway refused the request."), { code: frame.error?.code }));
}

function happened(name, data) {
  if (data.session_key !== sessionKey) return;
  // The bus (events.subscribe) adds `channel` to its events; the chat.send
  // stream does not. The answer's text comes from the stream only, so it
  // is not shown twice.
  const fromBus = "channel" in data;
  switch (name) {
    case "chat.tool_call":
      return toolCall(data);
    case "chat.tool_result":
      return toolResult(data);
    case "approval.requested":
      return approval(data);
  }
  if (fromBus || !turn || data.message_id !== turn.messageId) return;
  switch (name) {
    case "chat.delta":
      turn.text += data.text || "";
      paintSoon();
      break;
    case "chat.done":
      turn.text = data.text ?? turn.text;
      paint();
      endTurn();
      break;
    case "chat.notice":
      if (turn.text === "") turn.bubble.remove();
      add(message("system", "Gateway", data.text || ""));
      endTurn();
      break;
    case "chat.error":
      endTurn(data.message || "The turn failed.");
      break;
  }
}

// ---- a turn

function paint() {
  turn.painted = true;
  const stick = nearBottom();
  turn.body.replaceChildren(render(turn.text));
  if (stick) conversation.scrollTop = conversation.scrollHeight;
}

/** Re-render the answer at most every PAINT_MS, however many deltas
 * arrive. (A timer, not requestAnimationFrame: that one stops in tabs
 * out of sight.) */
function paintSoon() {
  if (!turn.painted) return;
  turn.painted = false;
  const t = turn;
  setTimeout(() => {
    if (turn === t) paint();
  }, PAINT_MS);
}

function busy(running) {
  sendButton.disabled = running;
  stopButton.disabled = !running;
  conversation.setAttribute("aria-busy", running ? "true" : "false");
}

/** End the running turn, with the error to show if it failed. */
function endTurn(error) {
  if (!turn) return;
  const t = turn;
  turn = null;
  t.bubble.classList.remove("streaming");
  if (t.text === "") t.bubble.remove();
  if (error) add(message("error", "Error", error));
  busy(false);
}

function newMessageId() {
  const random = crypto.randomUUID ? crypto.randomUUID() : Math.random().toString(36).slice(2) + Math.random().toString(36).slice(2);
  return `ui-${random}`;
}

async function send() {
  const text = input.value.trim();
  if (turn || text === "") return;
  add(message("user", "You", text));
  const bubble = message("assistant", agent, "");
  bubble.classList.add("streaming");
  add(bubble);
  // Our own id: the stream's events are known as this turn's from the first.
  const messageId = newMessageId();
  turn = { messageId, bubble, body: bubble.querySelector(".body"), text: "", painted: true };
  busy(true);
  input.value = "";
  const t = turn;
  try {
    const result = await request("chat.send", { text, user: USER, agent, message_id: messageId });
    if (result.session_key && result.session_key !== sessionKey) {
      sessionKey = result.session_key;
      root.dataset.sessionKey = sessionKey;
    }
  } catch (e) {
    if (turn === t) {
      endTurn(e.message);
      if (!input.value) input.value = text; // not sent: keep it to try again
    }
  }
}

async function stop() {
  if (!turn) return;
  stopButton.disabled = true;
  try {
    const result = await request("sessions.cancel", { key: sessionKey });
    if (!result.cancelled && turn) say("Nothing was running yet to stop: the message waits for its turn.");
  } catch (e) {
    add(message("error", "Error", `Stop failed: ${e.message}`));
  }
  if (turn) stopButton.disabled = false;
}

async function reset() {
  newButton.disabled = true;
  try {
    await request("sessions.reset", { key: sessionKey });
  } catch (e) {
    if (e.code !== "no_such_session") {
      add(message("error", "Error", `New session failed: ${e.message}`));
      newButton.disabled = false;
      return;
    }
  }
  newButton.disabled = false;
  if (turn) endTurn();
  toolCards.clear();
  conversation.replaceChildren();
  say("New session: the next message starts afresh.");
  input.focus();
}

// ---- tool calls and approvals

function toolCard(id, name) {
  let card = toolCards.get(id);
  if (card) return card;
  const li = el("li", "tool");
  const details = el("details", "tool-card");
  const summary = el("summary");
  summary.append("Tool ", el("code", "", name || "?"), " ");
  const state = el("span", "badge idle", "running");
  summary.append(state);
  details.append(summary);
  li.append(details);
  card = { li, details, state };
  toolCards.set(id, card);
  add(li, cardPlace());
  return card;
}

function toolCall(d) {
  const card = toolCard(d.id, d.name);
  card.details.append(el("p", "tool-label", "Arguments"), el("pre", "code", pretty(d.arguments)));
}

function toolResult(d) {
  const card = toolCard(d.id, d.name);
  card.state.textContent = d.is_error ? "failed" : "done";
  card.state.className = d.is_error ? "badge bad" : "badge ok";
  card.details.classList.toggle("error", !!d.is_error);
  card.details.append(el("p", "tool-label", d.is_error ? "Error" : "Result"), el("pre", "code", String(d.output ?? "")));
}

function approval(d) {
  const li = el("li", "approval");
  const card = el("div", "approval-card");
  const head = el("p");
  head.append(el("strong", "", "Approval needed: "), el("code", "", d.tool || "?"));
  if (d.expires_in_secs) head.append(" ", el("span", "muted", `(denied by itself in ${d.expires_in_secs} s)`));
  const approve = el("button", "primary", "Approve");
  const deny = el("button", "danger", "Deny");
  approve.type = deny.type = "button";
  const actions = el("div", "actions");
  actions.append(approve, deny);
  const outcome = el("p", "decision");
  outcome.setAttribute("role", "status");
  card.append(head, el("pre", "code", pretty(d.arguments)), actions, outcome);
  li.append(card);
  add(li, cardPlace());

  const decide = async (yes) => {
    approve.disabled = deny.disabled = true;
    try {
      await request(yes ? "approvals.approve" : "approvals.deny", { id: d.id });
      actions.remove();
      outcome.textContent = yes ? "Approved" : "Denied";
      outcome.className = yes ? "decision ok" : "decision bad";
    } catch (e) {
      outcome.textContent = e.message;
      outcome.className = "decision bad";
      // Decided elsewhere or expired: nothing left to decide.
      const over = e.code === "approval_not_waiting" || e.code === "no_such_approval";
      if (over) actions.remove();
      else approve.disabled = deny.disabled = false;
    }
  };
  approve.addEventListener("click", () => decide(true));
  deny.addEventListener("click", () => decide(false));
}

// ---- start

for (const body of conversation.querySelectorAll(".msg.assistant .body")) {
  body.replaceChildren(render(body.textContent));
}
conversation.scrollTop = conversation.scrollHeight;

form.addEventListener("submit", (e) => {
  e.preventDefault();
  send();
});
input.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    send();
  }
});
stopButton.addEventListener("click", stop);
newButton.addEventListener("click", reset);
agentSelect.addEventListener("change", () => {
  location.assign(`/chat?agent=${encodeURIComponent(agentSelect.value)}`);
});

busy(false);
connect();
