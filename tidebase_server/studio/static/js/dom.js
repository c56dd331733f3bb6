// Small DOM helpers: elements are built with textContent only (never innerHTML), so any
// workflow name, output or event payload is shown as text.

const SVG = "http://www.w3.org/2000/svg";

function fill(el, attrs, children) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else if (name === "text") {
      el.textContent = String(value);
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** An HTML element: h("a", {href: "#/"}, "Runs"). */
export function h(tag, attrs, ...children) {
  return fill(document.createElement(tag), attrs, children);
}

/** An SVG element. */
export function s(tag, attrs, ...children) {
  return fill(document.createElementNS(SVG, tag), attrs, children);
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

export const TERMINAL = new Set(["completed", "cancelled"]);

export function badge(status) {
  return h("span", { class: `badge status-${status}`, "data-status": status }, status);
}

export function fmtInt(n) {
  return Number(n || 0).toLocaleString("en-US");
}

export function fmtUsd(x) {
  if (x === null || x === undefined) return "—";
  if (x === 0) return "$0.00";
  return "$" + x.toFixed(x < 1 ? 4 : 2);
}

export function fmtTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  const now = new Date();
  const time = d.toLocaleTimeString("en-GB", { hour12: false });
  if (d.toDateString() === now.toDateString()) return time;
  return `${d.toISOString().slice(0, 10)} ${time}`;
}

export function timeEl(iso) {
  return h("time", { datetime: iso || "", title: iso || "" }, fmtTime(iso));
}

export function ago(iso) {
  if (!iso) return "—";
  const secs = Math.max(0, Math.round((Date.now() - new Date(iso).getTime()) / 1000));
  if (secs < 60) return `${secs}s ago`;
  if (secs < 3600) return `${Math.floor(secs / 60)}m ago`;
  if (secs < 86400) return `${Math.floor(secs / 3600)}h ago`;
  return `${Math.floor(secs / 86400)}d ago`;
}

export function shortHash(hash) {
  return hash ? hash.replace(/^sha256:/, "").slice(0, 12) : "—";
}

export function pretty(value) {
  return value === undefined ? "" : JSON.stringify(value, null, 2);
}

export function section(title, attrs, ...children) {
  return h("section", { class: "card", ...attrs }, h("h2", {}, title), ...children);
}
