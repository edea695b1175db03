// Slipway dashboard: live logs and copy buttons. No framework, no inline script (the CSP
// forbids it); everything here works without it too, the page just does not update itself.
"use strict";

function appendLine(log, stream, text) {
  const span = document.createElement("span");
  span.className = "line line-" + stream;
  span.textContent = text;
  log.append(span, "\n");
  if (log.dataset.pinned !== "false") log.scrollTop = log.scrollHeight;
}

function setStatus(id, status) {
  const el = document.getElementById(id);
  if (!el) return;
  el.textContent = status;
  el.className = "status status-" + status;
}

function showFailure(id, text) {
  const el = document.getElementById(id);
  if (!el || !text) return;
  el.textContent = text;
  el.hidden = false;
}

// A deployment's log: the API's server-sent events, relayed by the dashboard.
function followDeployment(log) {
  const source = new EventSource(log.dataset.follow);
  setStatus("deployment-status", "running");
  source.addEventListener("line", (e) => {
    const line = JSON.parse(e.data);
    appendLine(log, line.stream, line.line);
  });
  source.addEventListener("end", (e) => {
    source.close();
    const d = JSON.parse(e.data);
    setStatus("deployment-status", d.status);
    document.getElementById("cancel-deployment")?.remove();
    const commit = document.getElementById("deployment-commit");
    if (commit && d.commit_sha) {
      const sha = document.createElement("code");
      sha.textContent = d.commit_sha.slice(0, 8);
      commit.replaceChildren(sha, " " + (d.commit_message || ""));
    }
    const took = document.getElementById("deployment-took");
    if (took && d.duration != null) took.textContent = d.duration.toFixed(1) + " s";
    const steps = document.getElementById("steps");
    if (steps && Array.isArray(d.steps)) {
      steps.replaceChildren(...d.steps.map((s) => {
        const li = document.createElement("li");
        li.className = "step step-" + s.status;
        const name = document.createElement("span");
        name.textContent = s.name;
        const badge = document.createElement("span");
        badge.className = "status status-" + s.status;
        badge.textContent = s.status;
        li.append(name, " ", badge);
        if (s.duration_ms != null) {
          const ms = document.createElement("span");
          ms.className = "hint";
          ms.textContent = s.duration_ms + " ms";
          li.append(" ", ms);
        }
        return li;
      }));
    }
    if (d.failure_reason) {
      showFailure("deployment-failure", (d.failed_step ? "Failed at " + d.failed_step + ": " : "") + d.failure_reason);
    }
    log.removeAttribute("aria-live");
  });
  source.addEventListener("error", (e) => {
    // A stream error event carries JSON; a dropped connection has none and EventSource retries.
    if (e.data) {
      source.close();
      showFailure("deployment-failure", JSON.parse(e.data).message);
    }
  });
}

// An operation's log: polled, since operations have no event stream.
async function pollOperation(log) {
  let after = Number(log.dataset.after || 0);
  for (;;) {
    let progress;
    try {
      const response = await fetch(log.dataset.poll + "?after=" + after, { headers: { accept: "application/json" } });
      if (!response.ok) throw new Error(response.status);
      progress = await response.json();
    } catch (err) {
      await new Promise((r) => setTimeout(r, 3000));
      continue;
    }
    for (const line of progress.lines) {
      appendLine(log, line.stream, line.line);
      after = line.seq;
    }
    setStatus("operation-status", progress.status);
    if (!["queued", "running"].includes(progress.status)) {
      showFailure("operation-failure", progress.failure_reason);
      log.removeAttribute("aria-live");
      return;
    }
    await new Promise((r) => setTimeout(r, 2000));
  }
}

// A page showing something still being applied (a site installing) reloads once it is done.
async function reloadWhenDone(url) {
  for (;;) {
    await new Promise((r) => setTimeout(r, 2000));
    try {
      const response = await fetch(url, { headers: { accept: "application/json" } });
      if (response.ok && !["queued", "running"].includes((await response.json()).status)) {
        location.reload();
        return;
      }
    } catch (err) {
      // Try again at the next tick.
    }
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const pending = document.querySelector("[data-reload-after]");
  if (pending) reloadWhenDone(pending.dataset.reloadAfter);
  const log = document.getElementById("log");
  if (log) {
    log.addEventListener("scroll", () => {
      log.dataset.pinned = String(log.scrollTop + log.clientHeight >= log.scrollHeight - 4);
    });
    if (log.dataset.follow) followDeployment(log);
    if (log.dataset.poll) pollOperation(log);
  }
  for (const button of document.querySelectorAll("button.copy")) {
    button.addEventListener("click", async () => {
      const source = document.getElementById(button.dataset.copy);
      try {
        await navigator.clipboard.writeText(source.textContent.trim());
        button.textContent = "Copied";
      } catch (err) {
        // Without clipboard access (plain HTTP), select the text for a manual copy.
        const range = document.createRange();
        range.selectNodeContents(source);
        const selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
        button.textContent = "Selected: press Ctrl+C";
      }
    });
  }
});
