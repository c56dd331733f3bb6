// Studio's shell: the API key prompt, the "acting as" name, and a hash router
// (#/ runs, #/runs/<id> a run, #/queues queues and schedules).

import { AuthRequired, api, forgetKey, onAuthRequired, setKey } from "./api.js";
import { clear, h } from "./dom.js";
import { mountQueues } from "./queues.js";
import { mountRun } from "./run.js";
import { mountRuns } from "./runs.js";
import { session } from "./session.js";

const ACTOR = "tidebase.studio.actor";
const main = document.getElementById("main");
const dialog = document.getElementById("key-dialog");
const keyForm = document.getElementById("key-form");
const keyInput = document.getElementById("key-input");
const keyError = document.getElementById("key-error");
const authState = document.getElementById("auth-state");
const forget = document.getElementById("forget-key");
const actorInput = document.getElementById("actor");

let current = null; // the mounted page: { unmount() }

actorInput.value = localStorage.getItem(ACTOR) || "";
actorInput.addEventListener("input", () => localStorage.setItem(ACTOR, actorInput.value.trim()));

function route() {
  if (current) current.unmount();
  current = null;
  clear(main);
  const hash = location.hash || "#/";
  const match = hash.match(/^#\/runs\/(.+)$/);
  let page = "runs";
  if (match) {
    page = "run";
    current = mountRun(main, decodeURIComponent(match[1]));
  } else if (hash.startsWith("#/queues")) {
    page = "queues";
    current = mountQueues(main);
  } else {
    current = mountRuns(main);
  }
  for (const a of document.querySelectorAll("[data-nav]")) {
    a.classList.toggle("active", a.dataset.nav === page || (page === "run" && a.dataset.nav === "runs"));
  }
}

function askForKey(message) {
  if (current) current.unmount();
  current = null;
  clear(main).append(h("p", { class: "muted" }, "Waiting for the API key…"));
  keyError.hidden = !message;
  keyError.textContent = message || "";
  keyInput.value = "";
  if (!dialog.open) dialog.showModal();
  keyInput.focus();
}

function showAuth() {
  authState.hidden = !session.auth;
  forget.hidden = !session.auth;
  authState.textContent = session.auth ? "API key set" : "";
}

async function start() {
  try {
    const info = await api("/studio/api/info");
    session.auth = info.auth;
    showAuth();
    if (dialog.open) dialog.close();
    route();
  } catch (err) {
    if (err instanceof AuthRequired) {
      askForKey(
        err.hadKey
          ? "The server refused this key (401 unauthorized). Check the TIDEBASE_API_KEY the server runs with and try again."
          : "",
      );
      if (err.hadKey) forgetKey();
      return;
    }
    clear(main).append(h("p", { class: "error", role: "alert" }, `Studio cannot start: ${err.message}`));
  }
}

keyForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const key = keyInput.value.trim();
  if (!key) return;
  setKey(key);
  start();
});
dialog.addEventListener("cancel", (event) => event.preventDefault()); // no Studio without it

forget.addEventListener("click", () => {
  forgetKey();
  askForKey("");
});

let prompting = false;
onAuthRequired((err) => {
  if (prompting || dialog.open) return;
  prompting = true;
  if (err.hadKey) forgetKey();
  askForKey(err.hadKey ? "The server no longer accepts this key (401 unauthorized). Enter the current key." : "");
  prompting = false;
});

window.addEventListener("hashchange", () => {
  if (!dialog.open) route();
});

start();
