// Stockbot play: one person's chat at a time, drawn from /play/people/<id>/events (server-sent events).
// Everything is drawn as text, except the bot's message HTML, which the server rebuilt from
// Telegram's allowed tags with every piece of text escaped (bot/play/render.py).
"use strict";

const TEXTS = {
  en: {
    hint: "Switch person with one click. Press Stockout on the right, then open a customer's chat.",
    drop: "Drop a CSV or xlsx file to send it (the caption says what it holds)",
    send: "Send", write: "Message", attach: "Send a file", kind: "Caption: what the file holds",
    events: "Stock events", events_hint: "Sent to the bot's own HTTP API, signed, as a shop's system sends them.",
    product: "Product", stockout: "Stockout (every warehouse to 0)", warehouse: "Warehouse", qty: "Units",
    restock: "Restock", on_hand: "on hand", applied: "applied", failed: "refused",
    admin: "admin", purchaser: "purchaser", sales: "sales rep", customer: "customer", edited: "edited",
    gone: "That button is gone",
  },
  zh: {
    hint: "点一下即可切换身份。先在右侧点“缺货”，再打开顾客的聊天。",
    drop: "拖入 CSV 或 xlsx 文件即发送（标题写明文件内容）",
    send: "发送", write: "消息", attach: "发送文件", kind: "标题：文件内容",
    events: "库存事件", events_hint: "经机器人自己的 HTTP API 发送并签名，和店铺系统一样。",
    product: "商品", stockout: "缺货（所有仓库清零）", warehouse: "仓库", qty: "数量",
    restock: "补货", on_hand: "现有", applied: "已应用", failed: "被拒绝",
    admin: "管理员", purchaser: "采购", sales: "销售", customer: "顾客", edited: "已编辑",
    gone: "该按钮已失效",
  },
};
const KINDS = ["catalog", "stock", "customers", "orders", "history"];

const state = { people: [], current: null, baseline: false, source: null, seen: {}, toasted: new Set(), counts: {}, texts: TEXTS.en };
const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

async function call(method, path, body) {
  const options = { method, headers: { "X-Play": "1" } };
  if (body instanceof FormData) options.body = body;
  else if (body !== undefined) { options.body = JSON.stringify(body); options.headers["Content-Type"] = "application/json"; }
  const response = await fetch(path, options);
  let data = null;
  try { data = await response.json(); } catch (e) { data = null; }
  return { ok: response.ok, status: response.status, data };
}

function t(key) { return state.texts[key] || key; }

function applyTexts() {
  for (const node of document.querySelectorAll("[data-text]")) node.textContent = t(node.dataset.text);
  for (const node of document.querySelectorAll("[data-title]")) node.title = t(node.dataset.title);
  for (const node of document.querySelectorAll("[data-placeholder]")) node.placeholder = t(node.dataset.placeholder);
}

function drawPeople() {
  const list = $("people-list");
  list.replaceChildren();
  for (const person of state.people) {
    const unread = (state.counts[person.id] || 0) - (state.seen[person.id] || 0);
    const who = el("span", { class: "who" }, el("span", { text: person.name }), el("small", { text: t(person.role) }));
    const button = el("button", { type: "button", "data-person": String(person.id) },
      el("span", { class: "avatar", text: Array.from(person.name)[0] || "?" }), who,
      person.id !== state.current && unread > 0 ? el("span", { class: "badge", text: String(unread) }) : null);
    button.addEventListener("click", () => open(person.id));
    const item = el("li", { class: `role-${person.role}` + (person.id === state.current ? " current" : "") }, button);
    list.append(item);
  }
}

function open(personId) {
  if (state.source) state.source.close();
  state.current = personId;
  const person = state.people.find((p) => p.id === personId);
  $("chat-name").textContent = person.name;
  $("chat-role").textContent = t(person.role);
  $("kind").hidden = person.role === "customer";
  $("messages").replaceChildren();
  $("messages").dataset.drawn = "";
  drawn = new Map();
  $("menu").hidden = true;
  drawPeople();
  state.source = new EventSource(`/play/people/${personId}/events`);
  state.source.onmessage = (event) => {
    const chat = JSON.parse(event.data);
    if (chat.person === state.current) drawChat(chat);
  };
  $("text").focus();
}

function drawEntry(entry) {
  const bubble = el("div", { class: `msg ${entry.from}`, "data-id": String(entry.id) });
  if (entry.from === "user") {
    if (entry.document) bubble.append(el("div", { class: "doc", text: `📄 ${entry.document}` }));
    if (entry.text) bubble.append(el("span", { text: entry.text }));
    return bubble;
  }
  if (entry.file && entry.kind === "photo") {
    const picture = el("img", { src: `/play/files/${encodeURIComponent(entry.file.id)}`, alt: entry.file.name });
    picture.addEventListener("load", () => { const box = $("messages"); if (box.dataset.follow) box.scrollTop = box.scrollHeight; });
    bubble.append(picture);
  } else if (entry.file) {
    bubble.append(el("a", { class: "file", href: `/play/files/${encodeURIComponent(entry.file.id)}?download=1`,
                            download: entry.file.name, text: `📄 ${entry.file.name}` }));
    bubble.append(document.createElement("br"));
  }
  const body = el("span", { class: "body" });
  body.innerHTML = entry.html;  // rebuilt by the server from Telegram's allowed tags, text escaped
  bubble.append(body);
  if (entry.edited) bubble.append(el("span", { class: "edited", text: t("edited") }));
  if (entry.buttons.length) {
    const keyboard = el("div", { class: "keyboard" });
    for (const row of entry.buttons) {
      const line = el("div", { class: "row" });
      for (const button of row) {
        if (button.url && /^(https?|tg):/i.test(button.url)) {
          line.append(el("a", { href: button.url, target: "_blank", rel: "noopener noreferrer", text: button.text }));
          continue;
        }
        const press = el("button", { type: "button", text: button.text });
        press.addEventListener("click", () => pressButton(entry.id, button.index));
        line.append(press);
      }
      keyboard.append(line);
    }
    bubble.append(keyboard);
  }
  return bubble;
}

// Unchanged messages keep their nodes: pictures are not loaded again and the view does not jump.
let drawn = new Map();
function drawChat(chat) {
  const box = $("messages");
  const follow = !box.dataset.drawn || box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  const next = new Map();
  const nodes = chat.entries.map((entry) => {
    const key = `${entry.from}:${entry.id}`;
    const json = JSON.stringify(entry);
    const old = drawn.get(key);
    const node = old && old.json === json ? old.node : drawEntry(entry);
    next.set(key, { json, node });
    return node;
  });
  drawn = next;
  box.replaceChildren(...nodes);
  box.dataset.follow = follow ? "1" : "";
  if (follow) box.scrollTop = box.scrollHeight;
  box.dataset.drawn = "1";
  if (!state.baseline) { state.seen = { ...chat.counts }; state.baseline = true; }  // what was there is read
  state.counts = chat.counts;
  state.seen[chat.person] = chat.counts[chat.person] || 0;
  drawPeople();
  drawMenu(chat.commands);
  for (const answer of chat.answers) {
    if (state.toasted.has(answer.id)) continue;
    state.toasted.add(answer.id);
    if (box.dataset.toastsReady === String(chat.person)) toast(answer.text, answer.alert);
  }
  box.dataset.toastsReady = String(chat.person);  // answers already there when a chat opens are old news
  refreshStock();
}

function toast(text, alert) {
  const note = el("div", { class: "toast" + (alert ? " alert" : ""), role: "status", text });
  $("toasts").append(note);
  setTimeout(() => note.remove(), alert ? 6000 : 3500);
}

function drawMenu(commands) {
  const menu = $("menu");
  menu.replaceChildren(...commands.map((c) => {
    const item = el("button", { type: "button" }, el("b", { text: `/${c.command}` }), el("span", { text: c.description }));
    item.addEventListener("click", () => { $("text").value = `/${c.command} `; menu.hidden = true; $("text").focus(); });
    return item;
  }));
}

async function pressButton(messageId, index) {
  const result = await call("POST", `/play/people/${state.current}/press`, { message_id: messageId, button: index });
  if (!result.ok) toast((result.data && result.data.error) || t("gone"), false);
}

async function sendText(event) {
  event.preventDefault();
  const input = $("text");
  const text = input.value;
  if (!text.trim()) return;
  input.value = "";
  $("menu").hidden = true;
  const result = await call("POST", `/play/people/${state.current}/messages`, { text });
  if (!result.ok) { input.value = text; toast(result.data ? result.data.error : String(result.status), true); }
}

function guessKind(filename) {
  const lower = filename.toLowerCase();
  return KINDS.find((kind) => lower.includes(kind));
}

async function sendFile(file) {
  const person = state.people.find((p) => p.id === state.current);
  const form = new FormData();
  form.append("file", file, file.name);
  if (person.role !== "customer") {
    const kind = guessKind(file.name);
    if (kind) $("kind").value = kind;
    form.append("caption", $("kind").value);
  }
  const result = await call("POST", `/play/people/${state.current}/files`, form);
  if (!result.ok) toast(result.data ? result.data.error : String(result.status), true);
}

let stockRows = [];
async function refreshStock() {
  const result = await call("GET", "/play/stock");
  if (!result.ok) return;
  stockRows = result.data.stock;
  const select = $("sku");
  const chosen = select.value;
  const skus = [...new Map(stockRows.map((r) => [r.sku, r.name])).entries()];
  if (select.options.length !== skus.length) {
    select.replaceChildren(...skus.map(([sku, name]) => el("option", { value: sku, text: `${sku} · ${name}` })));
  }
  if (chosen) select.value = chosen;
  drawLevels();
}

function drawLevels() {
  const sku = $("sku").value;
  const rows = stockRows.filter((r) => r.sku === sku);
  $("levels").textContent = rows.map((r) => `${r.warehouse}: ${r.on_hand} ${t("on_hand")}`).join(" · ");
  const select = $("warehouse");
  const chosen = select.value;
  select.replaceChildren(...rows.map((r) => el("option", { value: r.warehouse, text: r.warehouse })));
  if (rows.some((r) => r.warehouse === chosen)) select.value = chosen;
}

async function stockEvent(action) {
  const body = { sku: $("sku").value, warehouse: $("warehouse").value, action };
  if (action === "restock") body.qty = parseInt($("qty").value, 10);
  const result = await call("POST", "/play/stock-events", body);
  const line = $("panel-result");
  line.className = result.ok ? "" : "bad";
  if (result.ok) line.textContent = `${t("applied")}: ${body.sku} · ${t(action)}`;
  else if (result.data && result.data.api && result.data.api.errors) {
    line.textContent = `${t("failed")}: ` + result.data.api.errors.map((e) => e.message).join("; ");
  } else line.textContent = `${t("failed")}: ` + ((result.data && result.data.error) || result.status);
  refreshStock();
}

function wireDrop() {
  const chat = $("chat");
  let depth = 0;
  chat.addEventListener("dragenter", (e) => { e.preventDefault(); depth += 1; chat.classList.add("dropping"); });
  chat.addEventListener("dragleave", () => { depth -= 1; if (depth <= 0) { depth = 0; chat.classList.remove("dropping"); } });
  chat.addEventListener("dragover", (e) => e.preventDefault());
  chat.addEventListener("drop", (e) => {
    e.preventDefault(); depth = 0; chat.classList.remove("dropping");
    for (const file of e.dataTransfer.files) sendFile(file);
  });
}

async function start() {
  const result = await call("GET", "/play/people");
  state.people = result.data.people;
  state.texts = TEXTS[result.data.locale] || TEXTS.en;
  document.documentElement.lang = result.data.locale;
  applyTexts();
  $("composer").addEventListener("submit", sendText);
  $("menu-button").addEventListener("click", () => { $("menu").hidden = !$("menu").hidden; });
  $("file-input").addEventListener("change", (e) => { for (const file of e.target.files) sendFile(file); e.target.value = ""; });
  $("sku").addEventListener("change", drawLevels);
  $("stockout").addEventListener("click", () => stockEvent("stockout"));
  $("restock").addEventListener("click", () => stockEvent("restock"));
  wireDrop();
  await refreshStock();
  open(state.people[0].id);
}

document.addEventListener("DOMContentLoaded", start);
