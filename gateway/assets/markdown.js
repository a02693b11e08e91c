// A small, safe Markdown renderer for the model's answers. It builds DOM
// nodes and puts every piece of text in with text nodes, never as HTML, so
// `<img onerror=…>` in an answer shows as text. The subset: ``` fenced code
// blocks, `inline code`, **bold**, *italic*, [links](https://…) (http and
// https only), paragraphs and line breaks, "- " and "1. " lists, and
// "# " headings (shown bold).

const FENCE = /^\s*```/;
const BULLET = /^\s*[-*+] +/;
const NUMBER = /^\s*\d{1,9}[.)] +/;
const HEADING = /^\s{0,3}#{1,6} +/;

// `code` | **bold** | *italic* | [text](url)
const INLINE = /`([^`\n]+)`|\*\*(?!\s)(.+?)(?<!\s)\*\*|\*(?!\s)([^*\n]+?)(?<!\s)\*|\[([^\]\n]+)\]\(([^()\s]+)\)/g;

function node(tag, className) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  return el;
}

/** The URL if it is http(s), else null. */
function safeUrl(raw) {
  try {
    const url = new URL(raw);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

/** Append `text` to `parent` with its inline marks. */
function inline(parent, text) {
  let last = 0;
  for (const m of text.matchAll(INLINE)) {
    if (m.index > last) parent.append(text.slice(last, m.index));
    last = m.index + m[0].length;
    if (m[1] !== undefined) {
      const code = node("code");
      code.textContent = m[1];
      parent.append(code);
    } else if (m[2] !== undefined) {
      const strong = node("strong");
      inline(strong, m[2]);
      parent.append(strong);
    } else if (m[3] !== undefined) {
      const em = node("em");
      inline(em, m[3]);
      parent.append(em);
    } else {
      const href = safeUrl(m[5]);
      if (href === null) {
        parent.append(m[0]); // another scheme (javascript:, data:…): text
        continue;
      }
      const a = node("a");
      a.href = href;
      a.rel = "noopener noreferrer";
      a.target = "_blank";
      inline(a, m[4]);
      parent.append(a);
    }
  }
  if (last < text.length) parent.append(text.slice(last));
}

/** A list of the lines from `lines[i]` on that match `marker`. */
function list(tag, marker, lines, i) {
  const el = node(tag);
  while (i < lines.length && marker.test(lines[i])) {
    const li = node("li");
    inline(li, lines[i].replace(marker, ""));
    el.append(li);
    i++;
  }
  return [el, i];
}

/**
 * Render Markdown `text` as a DocumentFragment, safely: the text never
 * becomes HTML. An unclosed code fence (an answer still streaming) runs to
 * the end.
 */
export function render(text) {
  const frag = document.createDocumentFragment();
  const lines = String(text ?? "").replace(/\r\n?/g, "\n").split("\n");
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (FENCE.test(line)) {
      const code = [];
      i++;
      while (i < lines.length && !FENCE.test(lines[i])) code.push(lines[i++]);
      i++; // the closing fence
      const pre = node("pre", "code");
      const c = node("code");
      c.textContent = code.join("\n");
      pre.append(c);
      frag.append(pre);
    } else if (BULLET.test(line)) {
      let el;
      [el, i] = list("ul", BULLET, lines, i);
      frag.append(el);
    } else if (NUMBER.test(line)) {
      let el;
      [el, i] = list("ol", NUMBER, lines, i);
      frag.append(el);
    } else if (HEADING.test(line)) {
      const p = node("p", "md-heading");
      const strong = node("strong");
      inline(strong, line.replace(HEADING, ""));
      p.append(strong);
      frag.append(p);
      i++;
    } else if (line.trim() === "") {
      i++;
    } else {
      const p = node("p");
      let first = true;
      while (i < lines.length && lines[i].trim() !== "" && !startsBlock(lines[i])) {
        if (!first) p.append(node("br"));
        inline(p, lines[i++]);
        first = false;
      }
      frag.append(p);
    }
  }
  return frag;
}

function startsBlock(line) {
  return FENCE.test(line) || BULLET.test(line) || NUMBER.test(line) || HEADING.test(line);
}
