// The berth console: a single page over berth's own APIs. The ECR JSON API
// (POST / with X-Amz-Target) and /v2 are called with the session cookie the
// sign-in set (HttpOnly: this script never sees it); every ECR call carries
// the session's CSRF token. Nothing is kept in local or session storage.
"use strict";

const ECR = "AmazonEC2ContainerRegistry_V20150921.";
const PAGE_SIZE = 25;
const MANIFEST_TYPES = [
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
  "application/vnd.docker.distribution.manifest.v2+json",
].join(", ");

let session = null; // {signedIn, authEnforced, accessKeyId, csrfToken, ...}
const listState = { query: "", page: 0, sort: "name", order: "asc" };

// ---- small DOM helpers ----

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function main() {
  return document.getElementById("main");
}

function show(...nodes) {
  const m = main();
  m.replaceChildren(...nodes.flat(Infinity).filter((n) => n !== null && n !== undefined && n !== false));
  const h = m.querySelector("h1");
  if (h) {
    h.setAttribute("tabindex", "-1");
    h.focus({ preventScroll: true });
  }
}

function fmtSize(n) {
  if (n === undefined || n === null) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return (i === 0 ? v : v.toFixed(1)) + " " + units[i];
}

function fmtTime(t) {
  if (t === undefined || t === null) return "–";
  const d = new Date(typeof t === "number" ? t * 1000 : t);
  if (isNaN(d)) return String(t);
  return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

// Each navigation gets a number: a page still loading when another is
// opened must not draw over it (its answers may come last).
let navSeq = 0;

function pageShow() {
  const nav = navSeq;
  return (...nodes) => {
    if (nav === navSeq) show(...nodes);
  };
}

function shortDigest(d) {
  return d ? d.replace(/^(sha256:)?([0-9a-f]{12}).*$/, "$1$2…") : "";
}

function host() {
  return location.host;
}

// A table that scrolls sideways on its own in a narrow window (keyboard: it takes focus).
function tableWrap(...children) {
  return el("div", { class: "table-wrap", tabindex: "0" }, el("table", {}, ...children));
}

function errorBox(message) {
  return el("p", { class: "error", role: "alert", text: message });
}

function copyButton(text, label) {
  return el("button", {
    type: "button",
    class: "copy secondary",
    "aria-label": "Copy " + label,
    onclick: async (ev) => {
      const b = ev.currentTarget;
      let ok = false;
      try {
        await navigator.clipboard.writeText(text);
        ok = true;
      } catch (e) {
        ok = copyBySelection(text, b);
      }
      b.textContent = ok ? "Copied" : "Select and copy";
      setTimeout(() => (b.textContent = "Copy"), 1500);
    },
  }, "Copy");
}

// Copying where the Clipboard API is missing (a plain-HTTP address other than
// localhost is no secure context) or refused: the text selected in a
// scratch field and copied as Ctrl+C would; focus goes back to the button.
function copyBySelection(text, button) {
  const t = el("textarea", { class: "visually-hidden", readonly: true, "aria-hidden": "true", tabindex: "-1" });
  t.value = text;
  document.body.append(t);
  t.select();
  let ok = false;
  try {
    ok = document.execCommand("copy");
  } catch (e) {
    ok = false;
  }
  t.remove();
  button.focus();
  return ok;
}

// ---- calls to berth ----

class ApiError extends Error {
  constructor(message, type, status) {
    super(message);
    this.type = type;
    this.status = status;
  }
}

// The session ended (signed out elsewhere, expired, or its cookie gone: the
// browser drops an expired cookie itself, and without one berth answers
// SignInRequired, MissingAuthenticationToken or, on /v2, 401).
function sessionEnded(err) {
  return ["UnrecognizedClientException", "SessionEnded", "MissingAuthenticationTokenException", "SignInRequired"].includes(err.type);
}

async function ecr(op, body) {
  const headers = {
    "Content-Type": "application/x-amz-json-1.1",
    "X-Amz-Target": ECR + op,
  };
  if (session && session.csrfToken) headers["X-CSRF-Token"] = session.csrfToken;
  const r = await fetch("/", {
    method: "POST",
    credentials: "same-origin",
    headers,
    body: JSON.stringify(body || {}),
  });
  const j = await r.json().catch(() => ({}));
  if (!r.ok) {
    const type = String(j.__type || "").split("#").pop();
    throw new ApiError(j.message || j.Message || "HTTP " + r.status, type, r.status);
  }
  return j;
}

async function v2(path, accept) {
  const r = await fetch("/v2/" + path, {
    credentials: "same-origin",
    headers: accept ? { Accept: accept } : {},
  });
  const text = await r.text();
  if (!r.ok) {
    let msg = "HTTP " + r.status;
    try {
      msg = JSON.parse(text).errors[0].message || msg;
    } catch (e) {
      /* not an OCI error body */
    }
    const type = r.status === 401 || (r.status === 403 && /session/.test(msg)) ? "SessionEnded" : "";
    throw new ApiError(msg, type, r.status);
  }
  return { text, type: r.headers.get("Content-Type"), digest: r.headers.get("Docker-Content-Digest"), link: r.headers.get("Link") };
}

// Every referrer of a subject: the referrers API's pages, following its Link.
async function allReferrers(repo, digest) {
  let path = repo + "/referrers/" + digest;
  let out = [];
  for (let i = 0; path && i < 1000; i++) {
    const r = await v2(path, "application/vnd.oci.image.index.v1+json");
    out = out.concat(JSON.parse(r.text).manifests || []);
    const next = /<\/v2\/([^>]+)>;\s*rel="?next"?/.exec(r.link || "");
    path = next ? next[1] : null;
  }
  return out;
}

async function consoleApi(method, path, body) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (session && session.csrfToken) headers["X-CSRF-Token"] = session.csrfToken;
  const r = await fetch("/ui/api/" + path, {
    method,
    credentials: "same-origin",
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const j = await r.json().catch(() => ({}));
  if (!r.ok) throw new ApiError(j.message || "HTTP " + r.status, j.error || "", r.status);
  return j;
}

async function allPages(op, body, key) {
  let out = [];
  let nextToken;
  do {
    const page = await ecr(op, Object.assign({}, body, { maxResults: 1000 }, nextToken ? { nextToken } : {}));
    out = out.concat(page[key] || []);
    nextToken = page.nextToken;
  } while (nextToken);
  return out;
}

// ---- sign-in and sign-out ----

function renderWho() {
  const who = document.getElementById("who");
  const name = document.getElementById("who-name");
  const button = document.getElementById("signout");
  button.textContent = "Sign out";
  document.getElementById("nav-registry").hidden = !!(session && session.anonymous);
  if (session && session.signedIn) {
    name.textContent = session.principal ? session.principal.replace(/^.*:user\//, "") + " (" + session.accessKeyId + ")" : session.accessKeyId;
    button.hidden = false;
    who.hidden = false;
  } else if (session && session.anonymous) {
    name.textContent = "Anonymous: public repositories only";
    button.textContent = "Sign in";
    button.hidden = false;
    who.hidden = false;
  } else if (session && !session.authEnforced) {
    name.textContent = "Anonymous: no access keys exist";
    button.hidden = true;
    who.hidden = false;
  } else {
    who.hidden = true;
  }
}

function signInPage(notice) {
  session = { signedIn: false, authEnforced: true, anonymousAllowed: !!(session && session.anonymousAllowed) };
  renderWho();
  const err = el("div", { id: "signin-error", "aria-live": "assertive" });
  if (notice) err.append(el("p", { class: "notice", role: "status", text: notice }));
  const akid = el("input", { id: "akid", name: "akid", autocomplete: "username", required: true, spellcheck: "false", autocapitalize: "off" });
  const secret = el("input", { id: "secret", name: "secret", type: "password", autocomplete: "current-password", required: true });
  const button = el("button", { type: "submit", id: "signin" }, "Sign in");
  const form = el("form", { class: "card signin", onsubmit: async (ev) => {
    ev.preventDefault();
    button.disabled = true;
    err.replaceChildren();
    try {
      session = await consoleApi("POST", "session", { accessKeyId: akid.value.trim(), secretAccessKey: secret.value });
      secret.value = "";
      renderWho();
      route();
    } catch (e) {
      err.replaceChildren(errorBox(e.status === 401 ? "Sign-in failed: the access key id or the secret is wrong." : "Sign-in failed: " + e.message));
      secret.focus();
    } finally {
      button.disabled = false;
    }
  } },
  el("h1", { text: "Sign in to berth" }),
  el("p", { class: "muted", text: "Use an access key (from berth keys create). The console acts with exactly its permissions." }),
  err,
  el("label", { for: "akid", text: "Access key id" }), akid,
  el("label", { for: "secret", text: "Secret access key" }), secret,
  button);
  const browse = session.anonymousAllowed
    ? el("div", { class: "card signin anonymous" },
      el("h2", { text: "No key?" }),
      el("p", { class: "muted", text: "This server lets anyone browse the repositories that are public by policy." }),
      el("button", { type: "button", class: "secondary", id: "browse-anonymously", onclick: async (ev) => {
        ev.currentTarget.disabled = true;
        try {
          session = await consoleApi("POST", "session", { anonymous: true });
          renderWho();
          route();
        } catch (e) {
          err.replaceChildren(errorBox("Anonymous browsing failed: " + e.message));
        }
      } }, "Browse public repositories"))
    : null;
  show(form, browse);
  akid.focus();
}

async function signOut() {
  const anonymous = session && session.anonymous;
  try {
    await consoleApi("DELETE", "session");
  } catch (e) {
    /* the session is gone either way */
  }
  navSeq++; // nothing still loading draws over the sign-in
  history.replaceState(null, "", "#/"); // no hashchange: the notice stays
  signInPage(anonymous ? undefined : "You have signed out.");
}

// Run a page's loader; a session that ended leads back to the sign-in.
async function guarded(fn) {
  const nav = navSeq;
  try {
    await fn();
  } catch (e) {
    if (nav !== navSeq) return; // left already
    if (sessionEnded(e)) {
      signInPage("Your session has ended (it expired, was signed out elsewhere, or its access key was deleted). Sign in again.");
    } else {
      const [title, message] = failure(e);
      const retry = el("button", { type: "button", id: "retry", onclick: () => route() }, "Try again");
      show(el("h1", { id: "error-title", text: title }), errorBox(message),
        el("div", { class: "toolbar" }, retry, el("a", { href: "#/", id: "error-back" }, "Back to the repositories")));
      retry.focus();
    }
  }
}

// A failed page's heading and message, by cause: berth unreachable (the request
// never got an answer), unavailable for a while (503, or a server error), a thing
// that does not exist, a refusal, or anything else with the API's own words.
function failure(e) {
  if (!(e instanceof ApiError)) {
    return ["berth is not answering", "The request got no answer (" + e.message + "): berth may be stopped or restarting, or the network is down. Try again in a moment."];
  }
  if (e.status === 503 || e.status >= 500 || e.type === "ServerException") {
    return ["berth cannot answer right now", e.message + " (HTTP " + e.status + "). This is usually temporary: try again in a moment."];
  }
  if (e.status === 404 || /NotFound/.test(e.type)) return ["Not found", e.message];
  if (e.status === 403 || e.type === "AccessDeniedException") return ["Not allowed", e.message];
  return ["Something went wrong", e.message];
}

// ---- repositories ----

// The list is searched, sorted and paged by berth (/ui/api/repositories):
// only the shown page comes to the browser, however many repositories exist.
const COLUMNS = [
  ["name", "Name"], ["images", "Images"], ["tags", "Tags"], ["size", "Size"],
  ["pushed", "Last push"], ["pulled", "Last pull"], [null, "Scan on push"], [null, "Tag mutability"],
];

async function repositoriesPage() {
  const show = pageShow(); // a page left before it loaded draws nothing
  show(el("h1", { text: "Repositories" }), el("p", { class: "loading", role: "status", text: "Loading repositories…" }));
  const search = el("input", { type: "search", id: "repo-search", placeholder: "Search by name", value: listState.query, "aria-label": "Search repositories by name" });
  const region = el("div", { id: "repo-list", "aria-live": "polite" });
  const refresh = el("button", { type: "button", class: "secondary", onclick: () => guarded(() => loadRepoList(region)) }, "Refresh");
  const create = el("button", { type: "button", id: "create-repo", hidden: true, onclick: () => createRepositoryDialog() }, "Create repository");
  let timer = null;
  search.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      listState.query = search.value;
      listState.page = 0;
      guarded(() => loadRepoList(region));
    }, 200);
  });
  show(el("h1", { text: "Repositories" }), el("div", { class: "toolbar" }, search, refresh, create), region);
  const page = await loadRepoList(region);
  create.hidden = !(page && page.mayCreate);
}

let listSeq = 0; // answers that arrive after a newer request are dropped

async function loadRepoList(region) {
  const seq = ++listSeq;
  const q = new URLSearchParams({
    q: listState.query.trim().toLowerCase(), sort: listState.sort, order: listState.order,
    offset: String(listState.page * PAGE_SIZE), limit: String(PAGE_SIZE),
  });
  region.setAttribute("aria-busy", "true");
  const page = await consoleApi("GET", "repositories?" + q.toString());
  if (seq !== listSeq) return page;
  region.removeAttribute("aria-busy");
  renderRepoList(region, page);
  return page;
}

function renderRepoList(region, page) {
  const rows = page.repositories || [];
  if (page.total === 0 && !listState.query.trim()) {
    region.replaceChildren(el("div", { class: "empty" },
      el("p", { text: "No repositories yet." }),
      el("p", { class: "muted" }, "Push an image to create one: ", el("code", { text: "docker push " + host() + "/NAME:TAG" }))));
    return;
  }
  if (page.total === 0) {
    region.replaceChildren(el("p", { class: "empty", role: "status", text: "No repository matches “" + listState.query + "”." }));
    return;
  }
  const pages = Math.ceil(page.total / PAGE_SIZE);
  if (rows.length === 0 && listState.page > 0) {
    listState.page = pages - 1;
    guarded(() => loadRepoList(region));
    return;
  }
  const body = el("tbody", {});
  for (const r of rows) {
    body.append(el("tr", {},
      el("th", { scope: "row" }, el("a", { href: "#/repo/" + encodeURIComponent(r.repositoryName), text: r.repositoryName })),
      el("td", { class: "num", text: String(r.imageCount) }),
      el("td", { class: "num", text: String(r.tagCount) }),
      el("td", { class: "num", text: fmtSize(r.sizeInBytes) }),
      el("td", { class: "nowrap", text: r.lastPushedAt ? fmtTime(r.lastPushedAt) : "–" }),
      el("td", { class: "nowrap", text: r.lastPulledAt ? fmtTime(r.lastPulledAt) : "never" }),
      el("td", { text: r.scanOnPush ? "on" : "off" }),
      el("td", { text: r.imageTagMutability.toLowerCase().replace(/_/g, " ") })));
  }
  const head = el("tr", {}, COLUMNS.map(([key, label]) => {
    if (!key) return el("th", { scope: "col", text: label });
    const active = listState.sort === key;
    const sortLabel = active ? (listState.order === "asc" ? "ascending" : "descending") : undefined;
    return el("th", { scope: "col", "aria-sort": sortLabel },
      el("button", {
        type: "button", class: "sort" + (active ? " active" : ""), "data-sort": key,
        onclick: () => {
          if (listState.sort === key) listState.order = listState.order === "asc" ? "desc" : "asc";
          else {
            listState.sort = key;
            listState.order = key === "name" ? "asc" : "desc";
          }
          listState.page = 0;
          guarded(() => loadRepoList(region));
        },
      }, label, el("span", { "aria-hidden": "true", class: "arrow", text: active ? (listState.order === "asc" ? " ▲" : " ▼") : "" })));
  }));
  const start = page.offset;
  const nav = el("nav", { class: "pager", "aria-label": "Pages" },
    el("button", { type: "button", class: "secondary", id: "page-prev", disabled: listState.page === 0, onclick: () => { listState.page--; guarded(() => loadRepoList(region)); } }, "Previous"),
    el("span", { id: "page-status", text: `${start + 1}–${start + rows.length} of ${page.total}` }),
    el("button", { type: "button", class: "secondary", id: "page-next", disabled: listState.page >= pages - 1, onclick: () => { listState.page++; guarded(() => loadRepoList(region)); } }, "Next"));
  // a sort or page button used from the keyboard keeps the focus once the list is
  // drawn again (its new copy takes it; a page button now disabled gives it to the other)
  const was = region.contains(document.activeElement) ? document.activeElement : null;
  region.replaceChildren(
    tableWrap(el("caption", { class: "visually-hidden", text: "Repositories" }), el("thead", {}, head), body),
    nav);
  if (was && was.dataset.sort) {
    region.querySelector('button[data-sort="' + was.dataset.sort + '"]').focus();
  } else if (was && (was.id === "page-prev" || was.id === "page-next")) {
    const same = document.getElementById(was.id);
    (same.disabled ? document.getElementById(was.id === "page-prev" ? "page-next" : "page-prev") : same).focus();
  }
}

// A modal form; onsubmit(values, errorRegion) resolves true to close it.
function formDialog(title, fields, submitLabel, onsubmit) {
  const d = el("dialog", { class: "confirm", "aria-labelledby": "form-title" });
  const err = el("div", { class: "form-error", "aria-live": "assertive" });
  const submit = el("button", { type: "submit", id: "form-submit" }, submitLabel);
  const form = el("form", { method: "dialog", class: "stack", onsubmit: async (ev) => {
    ev.preventDefault();
    submit.disabled = true;
    err.replaceChildren(el("p", { class: "loading", role: "status", text: "Working…" }));
    try {
      if (await onsubmit(form, err)) d.close("ok");
    } catch (e) {
      if (sessionEnded(e)) {
        d.close("cancel");
        signInPage("Your session has ended (it expired, was signed out elsewhere, or its access key was deleted). Sign in again.");
        return;
      }
      err.replaceChildren(errorBox(e.message));
    } finally {
      submit.disabled = false;
    }
  } },
  el("h2", { id: "form-title", text: title }), ...fields, err,
  el("div", { class: "actions" }, el("button", { type: "button", class: "secondary", onclick: () => d.close("cancel") }, "Cancel"), submit));
  d.append(form);
  d.addEventListener("close", () => d.remove());
  document.body.append(d);
  d.showModal();
  const first = form.querySelector("input, select, textarea");
  if (first) first.focus();
  return d;
}

function mutabilitySelect(id, value) {
  return el("select", { id, name: id },
    ["MUTABLE", "IMMUTABLE", "IMMUTABLE_WITH_EXCLUSION", "MUTABLE_WITH_EXCLUSION"].map((v) =>
      el("option", { value: v, selected: v === value, text: v.toLowerCase().replace(/_/g, " ") })));
}

function createRepositoryDialog() {
  formDialog("Create a repository", [
    el("label", { for: "new-repo-name", text: "Name" }),
    el("input", { id: "new-repo-name", name: "name", required: true, spellcheck: "false", autocapitalize: "off", placeholder: "team/app" }),
    el("label", { for: "new-repo-mutability", text: "Tag mutability" }),
    mutabilitySelect("new-repo-mutability", "MUTABLE"),
    el("label", { class: "check" }, el("input", { type: "checkbox", id: "new-repo-scan" }), " Scan on push"),
  ], "Create", async (form) => {
    const name = form.querySelector("#new-repo-name").value.trim();
    const out = await ecr("CreateRepository", {
      repositoryName: name,
      imageTagMutability: form.querySelector("#new-repo-mutability").value,
      imageScanningConfiguration: { scanOnPush: form.querySelector("#new-repo-scan").checked },
    });
    location.hash = "#/repo/" + encodeURIComponent(out.repository.repositoryName);
    return true;
  });
}

// ---- a repository ----

function pullCommands(ref) {
  const insecure = location.protocol === "http:";
  const lines = [
    ["docker", "docker pull " + ref],
    ["podman", "podman pull " + (insecure ? "--tls-verify=false " : "") + ref],
    ["ctr", "ctr image pull " + (insecure ? "--plain-http " : "") + ref],
  ];
  return el("div", { class: "pull" },
    el("h2", { text: "Pull" }),
    el("dl", {}, lines.map(([tool, cmd]) => [
      el("dt", { text: tool }),
      el("dd", {}, el("code", { text: cmd }), copyButton(cmd, tool + " command")),
    ])));
}

function confirmDialog(title, lines, action) {
  return new Promise((resolve) => {
    const d = el("dialog", { class: "confirm", "aria-labelledby": "confirm-title" });
    const cancel = el("button", { type: "button", class: "secondary", onclick: () => d.close("cancel") }, "Cancel");
    d.append(
      el("h2", { id: "confirm-title", text: title }),
      ...lines.map((l) => el("p", { text: l })),
      el("div", { class: "actions" }, cancel, el("button", { type: "button", class: "danger", id: "confirm-delete", onclick: () => d.close("ok") }, action)));
    d.addEventListener("close", () => {
      d.remove();
      resolve(d.returnValue === "ok");
    });
    document.body.append(d);
    d.showModal();
    cancel.focus();
  });
}

async function deleteImageIds(repo, ids, status) {
  status.replaceChildren(el("p", { class: "loading", role: "status", text: "Deleting…" }));
  try {
    const out = await ecr("BatchDeleteImage", { repositoryName: repo, imageIds: ids });
    if (out.failures && out.failures.length) {
      status.replaceChildren(errorBox("Not deleted: " + out.failures.map((f) => f.failureReason || f.failureCode).join("; ")));
      return false;
    }
    return true;
  } catch (e) {
    if (sessionEnded(e)) throw e;
    status.replaceChildren(errorBox("Not deleted: " + e.message));
    return false;
  }
}

function repoCrumbs(repo) {
  return el("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, el("a", { href: "#/", text: "Repositories" }), " / ", repo);
}

// The repository's pages: images, settings, lifecycle.
function repoTabs(repo, current) {
  const base = "#/repo/" + encodeURIComponent(repo);
  return el("nav", { class: "tabs", "aria-label": "Repository" },
    // anonymous browsing reads images only: the settings' calls are not granted to everyone
    [["images", "Images", base], ["settings", "Settings", base + "/settings"], ["lifecycle", "Lifecycle", base + "/lifecycle"]]
      .filter(([key]) => key === "images" || !(session && session.anonymous)).map(([key, label, href]) =>
      el("a", { href, "aria-current": key === current ? "page" : undefined, text: label })));
}

function repoPermissions(repo) {
  return consoleApi("GET", "permissions?repository=" + encodeURIComponent(repo)).then((p) => p.actions);
}

const SEVERITIES = ["CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL", "UNDEFINED"];

function scanCell(img) {
  const st = img.imageScanStatus;
  if (!st) return el("td", { class: "muted", text: "not scanned" });
  if (st.status !== "COMPLETE") return el("td", { class: "muted", title: st.description || "", text: st.status.toLowerCase().replace(/_/g, " ") });
  const counts = (img.imageScanFindingsSummary && img.imageScanFindingsSummary.findingSeverityCounts) || {};
  const parts = SEVERITIES.filter((s) => counts[s]).map((s) => el("span", { class: "sev sev-" + s.toLowerCase(), title: s.toLowerCase() }, counts[s] + " " + s.toLowerCase()));
  return el("td", { class: "scan" }, parts.length ? parts : el("span", { class: "sev sev-none", text: "no findings" }));
}

// The referrers (signatures, SBOMs, attestations) of each image, by subject:
// one referrers call per image, six at a time, for every image however many
// (progress(done, total) reports as they come back).
async function referrersOf(repo, digests, progress) {
  const out = new Map();
  const queue = digests.slice();
  let done = 0;
  async function worker() {
    while (queue.length) {
      const d = queue.shift();
      try {
        const list = await allReferrers(repo, d);
        if (list.length) out.set(d, list);
      } catch (e) {
        if (sessionEnded(e)) throw e;
      }
      done++;
      if (progress) progress(done, digests.length);
    }
  }
  await Promise.all([worker(), worker(), worker(), worker(), worker(), worker()]);
  return out;
}

const INDEX_TYPES = ["application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json"];

function platformName(p) {
  return p ? [p.os, p.architecture, p.variant].filter(Boolean).join("/") : "";
}

// The manifests of each index ({digest, platform}), read through /v2, six at a time.
async function indexChildren(repo, indexes) {
  const out = new Map();
  const queue = indexes.map((i) => i.imageDigest);
  async function worker() {
    while (queue.length) {
      const d = queue.shift();
      try {
        const m = JSON.parse((await v2(repo + "/manifests/" + d, MANIFEST_TYPES)).text);
        out.set(d, (m.manifests || []).map((c) => ({ digest: c.digest, platform: platformName(c.platform) })));
      } catch (e) {
        if (sessionEnded(e)) throw e;
      }
    }
  }
  await Promise.all([worker(), worker(), worker(), worker(), worker(), worker()]);
  return out;
}

function artifactKind(type) {
  const t = type || "";
  if (/sigstore|signature|notary|cosign/i.test(t)) return "signature";
  if (/spdx|cyclonedx|sbom|syft/i.test(t)) return "SBOM";
  if (/in-toto|attestation|provenance|slsa|vex/i.test(t)) return "attestation";
  return "artifact";
}

async function repositoryPage(repo) {
  const show = pageShow(); // a page left before it loaded draws nothing
  show(el("h1", { text: repo }), el("p", { class: "loading", role: "status", text: "Loading images…" }));
  let images, actions;
  try {
    [images, actions] = await Promise.all([
      allPages("DescribeImages", { repositoryName: repo }, "imageDetails"),
      repoPermissions(repo),
    ]);
  } catch (e) {
    // public for pulling (what anonymous browsing lists) but not for listing
    if (e.type !== "AccessDeniedException" || !(session && session.anonymous)) throw e;
    show(repoCrumbs(repo), el("h1", { text: repo }),
      el("p", { class: "notice", id: "pull-only", text: "Everyone may pull from this repository, but its policy does not let everyone list its images: pull by a tag or digest you know." }),
      pullCommands(host() + "/" + repo + ":TAG"));
    return;
  }
  const mayDelete = !!actions["ecr:BatchDeleteImage"];
  images.sort((a, b) => (b.imagePushedAt || 0) - (a.imagePushedAt || 0));
  const status = el("div", { id: "repo-status", "aria-live": "polite" });
  if (images.length === 0) {
    show(repoCrumbs(repo), el("h1", { text: repo }), repoTabs(repo, "images"), status, el("div", { class: "empty" },
      el("p", { text: "This repository has no images." }),
      el("p", { class: "muted" }, "Push one: ", el("code", { text: "docker push " + host() + "/" + repo + ":TAG" }))));
    return;
  }
  const progress = el("p", { class: "loading", role: "status", id: "referrers-progress", text: "Looking up signatures, SBOMs and attestations…" });
  show(repoCrumbs(repo), el("h1", { text: repo }), repoTabs(repo, "images"), progress);
  const referrers = await referrersOf(repo, images.map((i) => i.imageDigest), (done, total) => {
    if (total > 50) progress.textContent = "Looking up signatures, SBOMs and attestations: " + done + " of " + total + " images…";
  });
  const isReferrer = new Set();
  for (const list of referrers.values()) for (const r of list) isReferrer.add(r.digest);
  // an index's platforms, and its manifests listed under it
  const children = await indexChildren(repo, images.filter((i) => INDEX_TYPES.includes(i.imageManifestMediaType)));
  const byDigest = new Map(images.map((i) => [i.imageDigest, i]));
  const isChild = new Set();
  for (const [digest, list] of children) {
    byDigest.get(digest).platforms = list.map((x) => x.platform);
    for (const x of list) if (byDigest.has(x.digest) && x.digest !== digest) isChild.add(x.digest);
  }
  const body = el("tbody", {});
  const heads = ["Tags", "Digest", "Size", "Pushed", "Last pull", "Scan", "Media type"];
  if (mayDelete) heads.push("Actions");
  const top = images.filter((i) => !isReferrer.has(i.imageDigest) && !isChild.has(i.imageDigest));
  const addRows = (img, referrer, depth) => {
    body.append(imageRow(repo, img, mayDelete, status, referrer, depth));
    for (const c of depth < 3 ? children.get(img.imageDigest) || [] : []) {
      const detail = byDigest.get(c.digest);
      if (detail) addRows(detail, { platform: c.platform }, depth + 1);
    }
    for (const r of depth < 3 ? referrers.get(img.imageDigest) || [] : []) {
      const detail = byDigest.get(r.digest);
      if (detail) addRows(detail, r, depth + 1);
    }
  };
  for (const img of top) addRows(img, null, 0);
  const newest = top[0] || images[0];
  const ref = host() + "/" + repo + ((newest.imageTags || []).length ? ":" + newest.imageTags.slice().sort()[0] : "@" + newest.imageDigest);
  show(repoCrumbs(repo), el("h1", { text: repo }), repoTabs(repo, "images"), status,
    el("p", { class: "muted", text: top.length + (top.length === 1 ? " image" : " images") + (isChild.size ? ", " + isChild.size + " platform manifests" : "") + (isReferrer.size ? " and " + isReferrer.size + " referrers" : "") + (mayDelete ? "" : " · your key may not delete images here") }),
    tableWrap(el("caption", { class: "visually-hidden", text: "Images of " + repo }),
      el("thead", {}, el("tr", {}, heads.map((h) => el("th", { scope: "col", text: h })))), body),
    pullCommands(ref));
}

function imageRow(repo, img, mayDelete, status, referrer, depth) {
  const tags = (img.imageTags || []).slice().sort();
  const tagCell = el("td", { class: "tags" });
  if (referrer) tagCell.append(el("span", { class: "kind", "data-depth": String(depth), text: "↳ " + (referrer.platform !== undefined ? referrer.platform || "platform unknown" : artifactKind(referrer.artifactType)) }), " ");
  else if (tags.length === 0) tagCell.append(el("span", { class: "muted", text: "untagged" }));
  for (const t of tags) {
    const chip = el("span", { class: "tag" }, t);
    if (mayDelete) {
      chip.append(el("button", {
        type: "button", class: "chip-x", "aria-label": "Delete tag " + t, title: "Delete tag " + t,
        onclick: async () => {
          const only = tags.length === 1;
          const ok = await confirmDialog("Delete tag " + t + "?", [
            "The tag " + repo + ":" + t + " will be removed.",
            only ? "It is the image's only tag, so the image " + img.imageDigest + " goes with it." : "The image " + img.imageDigest + " stays, with its other tags: " + tags.filter((x) => x !== t).join(", ") + ".",
          ], "Delete tag");
          if (ok && (await deleteImageIds(repo, [{ imageTag: t }], status))) guarded(() => repositoryPage(repo));
        },
      }, "×"));
    }
    tagCell.append(chip, " ");
  }
  const actions = el("td", {});
  if (mayDelete) {
    actions.append(el("button", {
      type: "button", class: "danger small", "aria-label": "Delete image " + img.imageDigest,
      onclick: async () => {
        const ok = await confirmDialog("Delete this image?", [
          "The image " + img.imageDigest + " will be deleted from " + repo + ".",
          tags.length ? "Its tags go with it: " + tags.join(", ") + "." : "It has no tags.",
        ], "Delete image");
        if (ok && (await deleteImageIds(repo, [{ imageDigest: img.imageDigest }], status))) guarded(() => repositoryPage(repo));
      },
    }, "Delete"));
  }
  const media = ((referrer && referrer.artifactType) || img.imageManifestMediaType || "").replace(/^application\/(vnd\.)?/, "");
  return el("tr", { class: referrer ? (referrer.platform !== undefined ? "referrer child" : "referrer") : undefined },
    tagCell,
    el("td", { class: "nowrap" }, el("a", { href: "#/image/" + encodeURIComponent(repo) + "/" + img.imageDigest, class: "mono", title: img.imageDigest, text: shortDigest(img.imageDigest) }), " ", copyButton(img.imageDigest, "digest")),
    el("td", { class: "num", text: fmtSize(img.imageSizeInBytes) }),
    el("td", { class: "nowrap", text: fmtTime(img.imagePushedAt) }),
    el("td", { class: "nowrap", text: img.lastRecordedPullTime ? fmtTime(img.lastRecordedPullTime) : "never" }),
    referrer && !img.imageScanStatus ? el("td", { class: "muted", text: "–" }) : scanCell(img),
    el("td", { class: "muted small media" }, media, img.platforms && img.platforms.length ? el("div", { class: "platforms", text: img.platforms.map((p) => p || "?").join(", ") }) : null),
    mayDelete ? actions : null);
}

// ---- a repository's settings ----

// A section of a settings page: its own status line, so a save reports
// beside the control it concerns.
function section(title, id, ...children) {
  return el("section", { class: "card setting", id, "aria-labelledby": id + "-title" },
    el("h2", { id: id + "-title", text: title }), ...children);
}

async function saving(statusEl, fn, done) {
  statusEl.replaceChildren(el("p", { class: "loading", role: "status", text: "Saving…" }));
  try {
    await fn();
    statusEl.replaceChildren(el("p", { class: "ok", role: "status", text: done || "Saved." }));
    return true;
  } catch (e) {
    if (sessionEnded(e)) throw e;
    statusEl.replaceChildren(errorBox(e.message));
    return false;
  }
}

function statusLine(id) {
  return el("div", { class: "save-status", id, "aria-live": "polite" });
}

// flash: {id, text}, a status line to fill once the page is drawn again.
async function settingsPage(repo, flash) {
  const show = pageShow(); // a page left before it loaded draws nothing
  show(el("h1", { text: repo }), el("p", { class: "loading", role: "status", text: "Loading the settings…" }));
  const [described, actions] = await Promise.all([
    ecr("DescribeRepositories", { repositoryNames: [repo] }),
    repoPermissions(repo),
  ]);
  const r = described.repositories[0];
  let tags = [];
  let policy = "";
  const notes = [];
  try {
    tags = (await ecr("ListTagsForResource", { resourceArn: r.repositoryArn })).tags || [];
  } catch (e) {
    if (sessionEnded(e)) throw e;
    notes.push("Resource tags: " + e.message);
  }
  try {
    policy = (await ecr("GetRepositoryPolicy", { repositoryName: repo })).policyText || "";
  } catch (e) {
    if (sessionEnded(e)) throw e;
    if (e.type !== "RepositoryPolicyNotFoundException") notes.push("Repository policy: " + e.message);
  }
  const may = (a) => !!actions["ecr:" + a];
  const sections = [];

  // tag mutability and its exclusion filters
  {
    const sel = mutabilitySelect("mutability", r.imageTagMutability || "MUTABLE");
    const filters = el("textarea", { id: "mutability-filters", rows: "3", spellcheck: "false",
      "aria-describedby": "mutability-help" });
    filters.value = (r.imageTagMutabilityExclusionFilters || []).map((f) => f.filter).join("\n");
    const st = statusLine("mutability-status");
    const editable = may("PutImageTagMutability");
    sel.disabled = !editable;
    filters.readOnly = !editable;
    sections.push(section("Tag mutability", "set-mutability",
      el("label", { for: "mutability", text: "Tags are" }), sel,
      el("label", { for: "mutability-filters", text: "Exclusion filters" }), filters,
      el("p", { id: "mutability-help", class: "muted small", text: "One wildcard filter per line (e.g. latest or dev-*): tags matching them follow the opposite rule. Used with the “with exclusion” settings." }),
      editable ? el("button", { type: "button", id: "save-mutability", onclick: () => guarded(() => saving(st, async () => {
        const list = filters.value.split("\n").map((x) => x.trim()).filter(Boolean);
        const body = { repositoryName: repo, imageTagMutability: sel.value };
        if (list.length) body.imageTagMutabilityExclusionFilters = list.map((f) => ({ filterType: "WILDCARD", filter: f }));
        await ecr("PutImageTagMutability", body);
      })) }, "Save tag mutability") : null, st));
  }

  // scan on push
  {
    const box = el("input", { type: "checkbox", id: "scan-on-push", checked: !!(r.imageScanningConfiguration && r.imageScanningConfiguration.scanOnPush) });
    const st = statusLine("scan-status");
    const editable = may("PutImageScanningConfiguration");
    box.disabled = !editable;
    sections.push(section("Scanning", "set-scan",
      el("label", { class: "check" }, box, " Scan images when they are pushed"),
      editable ? el("button", { type: "button", id: "save-scan", onclick: () => guarded(() => saving(st, () =>
        ecr("PutImageScanningConfiguration", { repositoryName: repo, imageScanningConfiguration: { scanOnPush: box.checked } }))) }, "Save scanning") : null, st));
  }

  // resource tags
  {
    const st = statusLine("tags-status");
    const mayTag = may("TagResource");
    const mayUntag = may("UntagResource");
    const tbody = el("tbody", {}, tags.map((t) => el("tr", {},
      el("td", { class: "mono", text: t.Key }), el("td", { text: t.Value }),
      mayUntag ? el("td", {}, el("button", { type: "button", class: "danger small", "aria-label": "Remove tag " + t.Key,
        onclick: () => guarded(async () => {
          if (await saving(st, () => ecr("UntagResource", { resourceArn: r.repositoryArn, tagKeys: [t.Key] }), "Removed.")) settingsPage(repo);
        }) }, "Remove")) : null)));
    const key = el("input", { id: "tag-key", "aria-label": "Tag key", placeholder: "key" });
    const value = el("input", { id: "tag-value", "aria-label": "Tag value", placeholder: "value" });
    sections.push(section("Resource tags", "set-tags",
      tags.length ? tableWrap(el("thead", {}, el("tr", {}, ["Key", "Value", mayUntag ? "Actions" : null].filter(Boolean).map((x) => el("th", { scope: "col", text: x })))), tbody)
        : el("p", { class: "muted", text: "No resource tags." }),
      mayTag ? el("div", { class: "inline-form" }, key, value, el("button", { type: "button", id: "add-tag", onclick: () => guarded(async () => {
        if (await saving(st, () => ecr("TagResource", { resourceArn: r.repositoryArn, tags: [{ Key: key.value.trim(), Value: value.value }] }), "Added.")) settingsPage(repo);
      }) }, "Add tag")) : null, st));
  }

  // the repository policy, as JSON, validated by the API
  {
    const text = el("textarea", { id: "repo-policy", rows: "14", spellcheck: "false", class: "mono", "aria-describedby": "policy-status" });
    text.value = policy ? prettyJson(policy) : "";
    const st = statusLine("policy-status");
    const editable = may("SetRepositoryPolicy");
    text.readOnly = !editable;
    text.placeholder = editable ? '{"Version": "2012-10-17", "Statement": [...]}' : "No policy";
    sections.push(section("Repository policy", "set-policy",
      el("label", { for: "repo-policy", text: "Policy (JSON)" }), text,
      el("div", { class: "actions left" },
        editable ? el("button", { type: "button", id: "save-policy", onclick: () => guarded(async () => {
          // drawn again, so that the policy shows as stored and can be deleted
          if (await saving(st, () => ecr("SetRepositoryPolicy", { repositoryName: repo, policyText: text.value }))) {
            await settingsPage(repo, { id: "policy-status", text: "Saved." });
          }
        }) }, "Save policy") : null,
        policy && may("DeleteRepositoryPolicy") ? el("button", { type: "button", class: "secondary", id: "delete-policy", onclick: () => guarded(async () => {
          if (await confirmDialog("Delete the repository policy?", ["The policy of " + repo + " will be removed; access then follows the keys' own policies and the registry policy."], "Delete policy")
            && await saving(st, () => ecr("DeleteRepositoryPolicy", { repositoryName: repo }), "Deleted.")) settingsPage(repo);
        }) }, "Delete policy") : null), st));
  }

  // deleting the repository
  if (may("DeleteRepository")) {
    const st = statusLine("delete-status");
    sections.push(section("Delete the repository", "set-delete",
      el("p", { class: "muted", text: "Deletes the repository with all its images, tags and settings." }),
      el("button", { type: "button", class: "danger", id: "delete-repo", onclick: () => guarded(async () => {
        const images = await allPages("ListImages", { repositoryName: repo }, "imageIds");
        const digests = new Set(images.map((i) => i.imageDigest));
        const ok = await confirmDialog("Delete repository " + repo + "?", [
          "The repository " + repo + " will be deleted" + (digests.size ? " with its " + digests.size + (digests.size === 1 ? " image" : " images") + "." : "; it has no images."),
          "This cannot be undone.",
        ], "Delete repository");
        if (ok && await saving(st, () => ecr("DeleteRepository", { repositoryName: repo, force: digests.size > 0 }), "Deleted.")) {
          location.hash = "#/";
        }
      }) }, "Delete repository"), st));
  }
  const readOnly = !["PutImageTagMutability", "PutImageScanningConfiguration", "TagResource", "SetRepositoryPolicy", "DeleteRepository"].some(may);
  show(repoCrumbs(repo), el("h1", { text: repo }), repoTabs(repo, "settings"),
    readOnly ? el("p", { class: "notice", id: "read-only", text: "Your key may read these settings but not change them." }) : null,
    notes.length ? notes.map((n) => errorBox(n)) : null,
    el("dl", { class: "facts" },
      el("dt", { text: "URI" }), el("dd", {}, el("code", { text: r.repositoryUri }), copyButton(r.repositoryUri, "URI")),
      el("dt", { text: "ARN" }), el("dd", {}, el("code", { text: r.repositoryArn })),
      el("dt", { text: "Created" }), el("dd", { text: fmtTime(r.createdAt) })),
    el("div", { class: "settings" }, sections));
  const line = flash && document.getElementById(flash.id);
  if (line) line.replaceChildren(el("p", { class: "ok", role: "status", text: flash.text }));
}

function prettyJson(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch (e) {
    return text;
  }
}

// ---- a repository's lifecycle policy ----

const COUNT_TYPES = [
  ["imageCountMoreThan", "more images than"],
  ["sinceImagePushed", "days since pushed, more than"],
  ["sinceImagePulled", "days since last pulled, more than"],
  ["sinceImageTransitioned", "days since archived, more than"],
];

function newRule(priority) {
  return { rulePriority: priority, description: "", selection: { tagStatus: "untagged", countType: "imageCountMoreThan", countNumber: 10 }, action: { type: "expire" } };
}

// The rules of a policy text when the builder can show them all, or a
// sentence saying why not.
function rulesFromText(text) {
  let doc;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    return "the JSON does not parse (" + e.message + ")";
  }
  if (!doc || typeof doc !== "object" || Array.isArray(doc) || !Array.isArray(doc.rules)) return "it has no rules array";
  if (Object.keys(doc).some((k) => k !== "rules")) return "it has members besides rules";
  for (const r of doc.rules) {
    if (!r || typeof r !== "object" || !r.selection || typeof r.selection !== "object") return "a rule has no selection";
    if (Object.keys(r).some((k) => !["rulePriority", "description", "selection", "action"].includes(k))) return "a rule has members the builder does not know";
    if (Object.keys(r.selection).some((k) => !["tagStatus", "tagPatternList", "tagPrefixList", "countType", "countNumber", "countUnit", "storageClass"].includes(k))) return "a rule's selection has members the builder does not know";
    if (r.selection.storageClass !== undefined && !["standard", "archive"].includes(r.selection.storageClass)) return "a rule's storage class is neither standard nor archive";
    if (r.action) {
      if (typeof r.action !== "object") return "a rule's action is not an object";
      const a = r.action;
      const expire = a.type === "expire" && Object.keys(a).length === 1;
      const transition = a.type === "transition" && a.targetStorageClass === "archive" && Object.keys(a).length === 2;
      if (!expire && !transition) return "a rule's action is neither expire nor transition to archive";
    }
  }
  return doc.rules;
}

function textFromRules(rules) {
  return JSON.stringify({ rules }, null, 2);
}

function ruleEditor(rule, index, editable, onchange, onremove) {
  const id = (n) => "rule-" + index + "-" + n;
  const s = rule.selection;
  const field = (label, input) => el("div", { class: "field" }, el("label", { for: input.id, text: label }), input);
  const prio = el("input", { id: id("priority"), type: "number", min: "1", value: String(rule.rulePriority ?? ""), disabled: !editable });
  const desc = el("input", { id: id("description"), value: rule.description || "", disabled: !editable });
  const status = el("select", { id: id("status"), disabled: !editable },
    [["untagged", "untagged images"], ["tagged", "tagged images"], ["any", "any image"]].map(([v, l]) => el("option", { value: v, selected: (s.tagStatus || "").toLowerCase() === v, text: l })));
  const matchBy = el("select", { id: id("match"), disabled: !editable },
    el("option", { value: "tagPatternList", selected: !s.tagPrefixList, text: "tag patterns" }),
    el("option", { value: "tagPrefixList", selected: !!s.tagPrefixList, text: "tag prefixes" }));
  const patterns = el("input", { id: id("patterns"), value: (s.tagPatternList || s.tagPrefixList || []).join(", "), placeholder: "prod-*, release-*", disabled: !editable });
  const countType = el("select", { id: id("count-type"), disabled: !editable },
    COUNT_TYPES.map(([v, l]) => el("option", { value: v, selected: s.countType === v, text: l })));
  const count = el("input", { id: id("count"), type: "number", min: "1", value: String(s.countNumber ?? ""), disabled: !editable });
  const storage = el("select", { id: id("storage-class"), disabled: !editable },
    el("option", { value: "", selected: s.storageClass === undefined, text: "standard (not set)" }),
    el("option", { value: "standard", selected: s.storageClass === "standard", text: "standard" }),
    el("option", { value: "archive", selected: s.storageClass === "archive", text: "archive (archived images)" }));
  const action = el("select", { id: id("action"), disabled: !editable },
    el("option", { value: "expire", selected: !rule.action || rule.action.type !== "transition", text: "expire (delete)" }),
    el("option", { value: "transition", selected: !!rule.action && rule.action.type === "transition", text: "transition to archive" }));
  const countLabel = el("label", { for: count.id });
  const typeLabel = el("label", { for: countType.id });
  const relabel = () => {
    typeLabel.textContent = (action.value === "transition" ? "Archive" : "Expire") + " when there are";
    countLabel.textContent = "Count";
  };
  relabel();
  const tagFields = el("div", { class: "field-row", hidden: (s.tagStatus || "").toLowerCase() !== "tagged" },
    field("Match by", matchBy), field("Tags (comma-separated)", patterns));
  const read = () => {
    const sel = { tagStatus: status.value };
    if (status.value === "tagged") sel[matchBy.value] = patterns.value.split(",").map((x) => x.trim()).filter(Boolean);
    sel.countType = countType.value;
    if (countType.value !== "imageCountMoreThan") sel.countUnit = "days";
    sel.countNumber = count.value === "" ? null : Number(count.value);
    if (storage.value) sel.storageClass = storage.value;
    const r = { rulePriority: prio.value === "" ? null : Number(prio.value) };
    if (desc.value) r.description = desc.value;
    r.selection = sel;
    r.action = action.value === "transition" ? { type: "transition", targetStorageClass: "archive" } : { type: "expire" };
    relabel();
    tagFields.hidden = status.value !== "tagged";
    onchange(r);
  };
  for (const x of [prio, desc, status, matchBy, patterns, countType, count, storage, action]) {
    x.addEventListener("input", read);
    x.addEventListener("change", read);
  }
  return el("fieldset", { class: "rule", "data-rule": String(index) },
    el("legend", { text: "Rule " + (index + 1) }),
    el("div", { class: "field-row" }, field("Priority", prio), field("Description", desc)),
    el("div", { class: "field-row" }, field("Applies to", status), field("Storage class", storage)),
    tagFields,
    el("div", { class: "field-row" }, field("Action", action)),
    el("div", { class: "field-row" }, el("div", { class: "field" }, typeLabel, countType), el("div", { class: "field" }, countLabel, count)),
    editable ? el("button", { type: "button", class: "secondary small", "aria-label": "Remove rule " + (index + 1), onclick: onremove }, "Remove rule") : null);
}

async function lifecyclePage(repo) {
  const show = pageShow(); // a page left before it loaded draws nothing
  show(el("h1", { text: repo }), el("p", { class: "loading", role: "status", text: "Loading the lifecycle policy…" }));
  const actions = await repoPermissions(repo);
  let current = null;
  try {
    current = await ecr("GetLifecyclePolicy", { repositoryName: repo });
  } catch (e) {
    if (e.type !== "LifecyclePolicyNotFoundException") throw e;
  }
  const editable = !!actions["ecr:PutLifecyclePolicy"];
  const mayPreview = !!actions["ecr:StartLifecyclePolicyPreview"];
  const mayDelete = !!actions["ecr:DeleteLifecyclePolicy"];
  const text = el("textarea", { id: "lifecycle-json", class: "mono", rows: "18", spellcheck: "false", readOnly: !editable, "aria-describedby": "builder-note" });
  text.value = current ? prettyJson(current.lifecyclePolicyText) : textFromRules([newRule(1)]);
  const builder = el("div", { class: "builder", id: "rule-builder" });
  const note = el("p", { id: "builder-note", class: "muted small", "aria-live": "polite" });
  const errors = el("div", { id: "lifecycle-error", "aria-live": "assertive" });
  const results = el("div", { id: "preview", "aria-live": "polite" });
  let rules = [];

  const renderBuilder = () => {
    const parsed = rulesFromText(text.value);
    if (typeof parsed === "string") {
      note.textContent = "The builder cannot show this policy: " + parsed + ". Edit the JSON.";
      builder.replaceChildren();
      return;
    }
    note.textContent = "The builder and the JSON stay in step: a change in either shows in the other.";
    rules = parsed;
    builder.replaceChildren(...rules.map((r, i) => ruleEditor(r, i, editable, (updated) => {
      rules[i] = updated;
      text.value = textFromRules(rules);
    }, () => {
      rules.splice(i, 1);
      text.value = textFromRules(rules);
      renderBuilder();
    })), editable ? el("button", { type: "button", class: "secondary", id: "add-rule", onclick: () => {
      const next = rules.reduce((m, r) => Math.max(m, Number(r.rulePriority) || 0), 0) + 1;
      rules.push(newRule(next));
      text.value = textFromRules(rules);
      renderBuilder();
      const p = builder.querySelector('[data-rule="' + (rules.length - 1) + '"] input');
      if (p) p.focus();
    } }, "Add rule") : null);
  };
  text.addEventListener("input", renderBuilder);
  renderBuilder();

  const apiError = (e) => {
    if (sessionEnded(e)) throw e;
    errors.replaceChildren(errorBox(e.message));
  };

  const preview = async () => {
    errors.replaceChildren();
    results.replaceChildren(el("p", { class: "loading", role: "status", text: "Computing the preview…" }));
    try {
      await ecr("StartLifecyclePolicyPreview", { repositoryName: repo, lifecyclePolicyText: text.value });
    } catch (e) {
      results.replaceChildren();
      apiError(e);
      return;
    }
    let out;
    for (let i = 0; ; i++) {
      out = await ecr("GetLifecyclePolicyPreview", { repositoryName: repo, maxResults: 100 });
      if (out.status !== "IN_PROGRESS") break;
      await new Promise((r) => setTimeout(r, Math.min(200 * (i + 1), 1000)));
    }
    if (out.status !== "COMPLETE") {
      results.replaceChildren(errorBox("The preview " + String(out.status).toLowerCase() + "."));
      return;
    }
    let list = out.previewResults || [];
    let token = out.nextToken;
    while (token) {
      const more = await ecr("GetLifecyclePolicyPreview", { repositoryName: repo, maxResults: 100, nextToken: token });
      list = list.concat(more.previewResults || []);
      token = more.nextToken;
    }
    let policyRules = [];
    try {
      policyRules = JSON.parse(text.value).rules || [];
    } catch (e) { /* the API accepted it */ }
    const why = (p) => {
      const r = policyRules.find((x) => x.rulePriority === p);
      return "rule " + p + (r && r.description ? ": " + r.description : "");
    };
    list.sort((a, b) => (a.appliedRulePriority - b.appliedRulePriority) || ((a.imagePushedAt || 0) - (b.imagePushedAt || 0)));
    if (list.length === 0) {
      results.replaceChildren(el("h2", { text: "Preview" }), el("p", { class: "empty", role: "status", text: "No image would expire or be archived under this policy." }));
      return;
    }
    const isTransition = (p) => !!p.action && String(p.action.type).toUpperCase() === "TRANSITION";
    const nArchive = list.filter(isTransition).length;
    const nExpire = list.length - nArchive;
    const counts = [];
    if (nExpire) counts.push(nExpire + (nExpire === 1 ? " image would expire" : " images would expire"));
    if (nArchive) counts.push(nArchive + (nArchive === 1 ? " image would move to archive" : " images would move to archive"));
    results.replaceChildren(el("h2", { text: "Preview" }),
      el("p", { role: "status", text: counts.join(", ") + ":" }),
      tableWrap(el("caption", { class: "visually-hidden", text: "Images that would expire or be archived" }),
        el("thead", {}, el("tr", {}, ["Image", "Tags", "Pushed", "Storage class", "Action", "Selected by"].map((x) => el("th", { scope: "col", text: x })))),
        el("tbody", {}, list.map((p) => el("tr", { class: isTransition(p) ? "transitioning" : "expiring" },
          el("td", {}, el("a", { class: "mono", href: "#/image/" + encodeURIComponent(repo) + "/" + p.imageDigest, title: p.imageDigest, text: shortDigest(p.imageDigest) })),
          el("td", { text: (p.imageTags || []).join(", ") || "untagged" }),
          el("td", { class: "nowrap", text: fmtTime(p.imagePushedAt) }),
          el("td", { text: String(p.storageClass || "standard").toLowerCase() }),
          el("td", { class: "action", text: isTransition(p) ? "transition to " + String(p.action.targetStorageClass || "archive").toLowerCase() : "expire" }),
          el("td", { class: "rule-ref", text: why(p.appliedRulePriority) }))))));
  };

  const apply = async () => {
    errors.replaceChildren();
    const ok = await confirmDialog("Apply this lifecycle policy?", [
      "berth will expire or archive the images of " + repo + " that the policy selects, in the background, from now on.",
      "Preview first to see which images that is.",
    ], "Apply policy");
    if (!ok) return;
    results.replaceChildren(el("p", { class: "loading", role: "status", text: "Applying…" }));
    try {
      await ecr("PutLifecyclePolicy", { repositoryName: repo, lifecyclePolicyText: text.value });
      results.replaceChildren(el("p", { class: "ok", role: "status", id: "applied", text: "Applied. The background job expires what it selects; the Images tab shows what is left." }));
      current = { lifecyclePolicyText: text.value };
      deleteButton.hidden = !mayDelete;
    } catch (e) {
      results.replaceChildren();
      apiError(e);
    }
  };

  const deleteButton = el("button", { type: "button", class: "secondary", id: "delete-lifecycle", hidden: !(mayDelete && current), onclick: () => guarded(async () => {
    if (!(await confirmDialog("Delete the lifecycle policy?", ["No image of " + repo + " will expire by policy any more."], "Delete policy"))) return;
    try {
      await ecr("DeleteLifecyclePolicy", { repositoryName: repo });
      guarded(() => lifecyclePage(repo));
    } catch (e) {
      apiError(e);
    }
  }) }, "Delete policy");

  show(repoCrumbs(repo), el("h1", { text: repo }), repoTabs(repo, "lifecycle"),
    el("p", { class: "muted", text: current
      ? "This repository has a lifecycle policy" + (current.lastEvaluatedAt ? ", last evaluated " + fmtTime(current.lastEvaluatedAt) : "") + "."
      : "This repository has no lifecycle policy; the rule below is a starting point." }),
    editable ? null : el("p", { class: "notice", id: "read-only", text: "Your key may read this policy but not change it." }),
    el("div", { class: "lifecycle" },
      el("section", { class: "card", "aria-labelledby": "builder-title" }, el("h2", { id: "builder-title", text: "Rules" }), note, builder),
      el("section", { class: "card", "aria-labelledby": "json-title" }, el("h2", { id: "json-title" }, el("label", { for: "lifecycle-json", text: "Policy JSON" })), text)),
    errors,
    el("div", { class: "actions left" },
      mayPreview ? el("button", { type: "button", class: "secondary", id: "preview-lifecycle", onclick: () => guarded(preview) }, "Preview") : null,
      editable ? el("button", { type: "button", id: "apply-lifecycle", onclick: () => guarded(apply) }, "Apply") : null,
      mayDelete ? deleteButton : null),
    results);
}

// ---- an image ----

function jsonBlock(title, obj) {
  return el("details", { open: true }, el("summary", { text: title }), el("pre", { class: "json", tabindex: "0", text: JSON.stringify(obj, null, 2) }));
}

async function imagePage(repo, digest) {
  const show = pageShow(); // a page left before it loaded draws nothing
  show(el("h1", { text: repo + "@" + shortDigest(digest) }), el("p", { class: "loading", role: "status", text: "Loading the image…" }));
  const [m, actions] = await Promise.all([v2(repo + "/manifests/" + digest, MANIFEST_TYPES), repoPermissions(repo)]);
  const manifest = JSON.parse(m.text);
  let details = null;
  try {
    const d = await ecr("DescribeImages", { repositoryName: repo, imageIds: [{ imageDigest: digest }] });
    details = (d.imageDetails || [])[0] || null;
  } catch (e) {
    if (sessionEnded(e)) throw e;
  }
  const tags = details && details.imageTags ? details.imageTags.slice().sort() : [];
  const crumbs = el("nav", { class: "crumbs", "aria-label": "Breadcrumb" },
    el("a", { href: "#/", text: "Repositories" }), " / ",
    el("a", { href: "#/repo/" + encodeURIComponent(repo), text: repo }), " / ", shortDigest(digest));
  const facts = el("dl", { class: "facts" },
    el("dt", { text: "Digest" }), el("dd", {}, el("code", { text: digest }), copyButton(digest, "digest")),
    el("dt", { text: "Tags" }), el("dd", { text: tags.length ? tags.join(", ") : "none" }),
    el("dt", { text: "Media type" }), el("dd", { text: manifest.mediaType || m.type || "–" }),
    el("dt", { text: "Size" }), el("dd", { text: details ? fmtSize(details.imageSizeInBytes) : "–" }),
    el("dt", { text: "Pushed" }), el("dd", { text: details ? fmtTime(details.imagePushedAt) : "–" }),
    el("dt", { text: "Last pull" }), el("dd", { text: details && details.lastRecordedPullTime ? fmtTime(details.lastRecordedPullTime) : "never" }),
    manifest.subject ? [el("dt", { text: "Refers to" }), el("dd", {}, el("a", { class: "mono", id: "subject", href: "#/image/" + encodeURIComponent(repo) + "/" + manifest.subject.digest, text: shortDigest(manifest.subject.digest) }),
      " (" + artifactKind(manifest.artifactType || (manifest.config && manifest.config.mediaType)) + ")")] : null);
  const ref = host() + "/" + repo + (tags.length ? ":" + tags[0] : "@" + digest);
  const parts = [crumbs, el("h1", { text: repo + "@" + shortDigest(digest) }), facts, pullCommands(ref)];

  if (Array.isArray(manifest.manifests)) {
    const body = el("tbody", {});
    for (const c of manifest.manifests) {
      const p = c.platform || {};
      body.append(el("tr", {},
        el("td", { text: [p.os, p.architecture, p.variant].filter(Boolean).join("/") || "–" }),
        el("td", {}, el("a", { class: "mono", href: "#/image/" + encodeURIComponent(repo) + "/" + c.digest, text: shortDigest(c.digest) })),
        el("td", { class: "muted small", text: c.mediaType || "" }),
        el("td", { class: "num", text: fmtSize(c.size) })));
    }
    parts.push(el("h2", { text: "Manifests" }), tableWrap( el("thead", {}, el("tr", {}, ["Platform", "Digest", "Media type", "Size"].map((h) => el("th", { scope: "col", text: h })))), body));
    parts.push(await referrersSection(repo, digest));
    parts.push(jsonBlock("Index", manifest));
    show(...parts);
    return;
  }

  if (!manifest.subject) parts.push(await findingsSection(repo, digest, !!actions["ecr:StartImageScan"]));
  const layers = manifest.layers || [];
  const lbody = el("tbody", {});
  layers.forEach((l, i) => lbody.append(el("tr", {},
    el("td", { class: "num", text: String(i + 1) }),
    el("td", { class: "mono", title: l.digest, text: shortDigest(l.digest) }),
    el("td", { class: "muted small", text: l.mediaType || "" }),
    el("td", { class: "num", text: fmtSize(l.size) }))));
  parts.push(el("h2", { text: "Layers" }), layers.length
    ? tableWrap( el("thead", {}, el("tr", {}, ["#", "Digest", "Media type", "Size"].map((h) => el("th", { scope: "col", text: h })))), lbody)
    : el("p", { class: "empty", text: "This image has no layers." }));

  let config = null;
  if (manifest.config && manifest.config.digest) {
    try {
      config = JSON.parse((await v2(repo + "/blobs/" + manifest.config.digest)).text);
    } catch (e) {
      if (sessionEnded(e)) throw e;
      parts.push(errorBox("The config could not be read: " + e.message));
    }
  }
  if (config) {
    const history = config.history || [];
    const hbody = el("tbody", {});
    for (const h of history) {
      hbody.append(el("tr", {},
        el("td", { class: "nowrap", text: h.created ? fmtTime(h.created) : "–" }),
        el("td", {}, el("code", { class: "step", text: (h.created_by || h.comment || "").replace(/^\/bin\/sh -c #\(nop\)\s*/, "") })),
        el("td", { text: h.empty_layer ? "no" : "yes" })));
    }
    const labels = Object.entries((config.config && config.config.Labels) || {}).sort();
    parts.push(el("h2", { text: "Labels" }), labels.length
      ? tableWrap(el("thead", {}, el("tr", {}, ["Label", "Value"].map((x) => el("th", { scope: "col", text: x })))),
        el("tbody", {}, labels.map(([k, v]) => el("tr", {}, el("td", { class: "mono", text: k }), el("td", { text: String(v) })))))
      : el("p", { class: "empty", text: "The config sets no labels." }));
    parts.push(el("h2", { text: "History" }), history.length
      ? tableWrap( el("thead", {}, el("tr", {}, ["Created", "Step", "Layer"].map((x) => el("th", { scope: "col", text: x })))), hbody)
      : el("p", { class: "empty", text: "The config records no history." }));
  }
  parts.push(await referrersSection(repo, digest));
  parts.push(jsonBlock("Manifest", manifest));
  if (config) parts.push(jsonBlock("Config", config));
  show(...parts);
}


// ---- an image's scan findings ----

function attr(f, key) {
  const a = (f.attributes || []).find((x) => x.key === key);
  return a ? a.value : undefined;
}

function safeUrl(u) {
  return /^https?:\/\//i.test(u || "") ? u : null;
}

async function findingsSection(repo, digest, mayScan) {
  const region = el("section", { id: "findings", "aria-labelledby": "findings-title" }, el("h2", { id: "findings-title", text: "Vulnerabilities" }));
  const body = el("div", { "aria-live": "polite" });
  region.append(body);
  const scanButton = (label) => mayScan ? el("button", { type: "button", class: "secondary", id: "start-scan", onclick: () => guarded(async () => {
    try {
      await ecr("StartImageScan", { repositoryName: repo, imageId: { imageDigest: digest } });
    } catch (e) {
      if (sessionEnded(e)) throw e;
      body.replaceChildren(errorBox("The scan did not start: " + e.message));
      return;
    }
    body.replaceChildren(scanning());
    await loadFindings(true);
  }) }, label) : null;
  const scanning = () => el("p", { class: "loading", role: "status", text: "Scanning…" });
  // The findings once the scan is done. A scan running as the page opens (scan on
  // push, or one started elsewhere) says so and is followed from there without holding
  // the page back (follow false); a followed scan is polled for as long as the page shows.
  const loadFindings = async (follow) => {
    const nav = navSeq;
    let out;
    for (let i = 0; ; i++) {
      if (nav !== navSeq) return; // left the page
      try {
        out = await ecr("DescribeImageScanFindings", { repositoryName: repo, imageId: { imageDigest: digest }, maxResults: 1000 });
      } catch (e) {
        if (sessionEnded(e)) throw e;
        if (e.type === "ScanNotFoundException") {
          body.replaceChildren(el("p", { class: "empty", text: "This image has not been scanned." }), scanButton("Scan now"));
          return;
        }
        body.replaceChildren(errorBox(e.message));
        return;
      }
      if (out.imageScanStatus.status !== "IN_PROGRESS") break;
      if (!follow) {
        body.replaceChildren(scanning());
        guarded(() => loadFindings(true));
        return;
      }
      await new Promise((r) => setTimeout(r, i < 120 ? 500 : 2000));
    }
    if (nav !== navSeq) return;
    let findings = pageFindings(out);
    let token = out.nextToken;
    while (token) {
      const more = await ecr("DescribeImageScanFindings", { repositoryName: repo, imageId: { imageDigest: digest }, maxResults: 1000, nextToken: token });
      findings = findings.concat(pageFindings(more));
      token = more.nextToken;
    }
    renderFindings(out, findings);
  };
  // A page's findings in the basic shape: under ENHANCED scanning the API answers
  // Inspector's enhancedFindings (one vulnerable package each).
  const pageFindings = (o) => {
    const sf = o.imageScanFindings || {};
    if (sf.findings) return sf.findings;
    return (sf.enhancedFindings || []).map((e) => {
      const d = e.packageVulnerabilityDetails || {};
      const p = (d.vulnerablePackages || [])[0] || {};
      // Inspector splits an OS package's version: put "[epoch:]version[-release]" together again
      const version = p.version && (p.epoch ? p.epoch + ":" : "") + p.version + (p.release ? "-" + p.release : "");
      const attributes = [["package_name", p.name], ["package_version", version], ["fixed_in_version", p.fixedInVersion]]
        .filter((a) => a[1]).map((a) => ({ key: a[0], value: a[1] }));
      return { name: d.vulnerabilityId, description: e.description, uri: d.sourceUrl, severity: d.vendorSeverity || e.severity, attributes };
    });
  };
  const renderFindings = (out, findings) => {
    const st = out.imageScanStatus || {};
    const sf = out.imageScanFindings || {};
    const head = el("p", { class: "muted", id: "scan-status" },
      "Scan " + String(st.status || "").toLowerCase().replace(/_/g, " ") + (sf.imageScanCompletedAt ? ", " + fmtTime(sf.imageScanCompletedAt) : "") +
      (sf.vulnerabilitySourceUpdatedAt ? " · vulnerability data of " + fmtTime(sf.vulnerabilitySourceUpdatedAt) : "") + (st.description && st.status !== "COMPLETE" ? ": " + st.description : ""));
    if (st.status !== "COMPLETE") {
      body.replaceChildren(head, scanButton("Scan again"));
      return;
    }
    const counts = sf.findingSeverityCounts || {};
    const filter = el("select", { id: "severity-filter", "aria-label": "Show findings of severity" },
      el("option", { value: "", text: "all severities (" + findings.length + ")" }),
      SEVERITIES.filter((s) => counts[s]).map((s) => el("option", { value: s, text: s.toLowerCase() + " (" + counts[s] + ")" })));
    const table = el("div", {});
    const draw = () => {
      const shown = findings.filter((f) => !filter.value || f.severity === filter.value);
      if (findings.length === 0) {
        table.replaceChildren(el("p", { class: "empty", text: "No known vulnerabilities." }));
        return;
      }
      table.replaceChildren(tableWrap(el("caption", { class: "visually-hidden", text: "Findings" }),
        el("thead", {}, el("tr", {}, ["Severity", "Vulnerability", "Package", "Installed", "Fixed in", "Description"].map((x) => el("th", { scope: "col", text: x })))),
        el("tbody", {}, shown.map((f) => {
          const url = safeUrl(f.uri);
          const fixed = attr(f, "fixed_in_version");
          return el("tr", { class: "finding", "data-severity": f.severity },
            el("td", {}, el("span", { class: "sev sev-" + String(f.severity).toLowerCase(), text: String(f.severity).toLowerCase() })),
            el("td", { class: "nowrap" }, url ? el("a", { href: url, rel: "noreferrer noopener", target: "_blank", text: f.name }) : f.name),
            el("td", { class: "mono", text: attr(f, "package_name") || "–" }),
            el("td", { class: "mono", text: attr(f, "package_version") || "–" }),
            el("td", { class: "mono", text: fixed || "–" }),
            el("td", { class: "small", text: f.description || "" }));
        }))));
    };
    filter.addEventListener("change", draw);
    draw();
    body.replaceChildren(head,
      el("p", { class: "sevs" }, SEVERITIES.filter((s) => counts[s]).map((s) => el("span", { class: "sev sev-" + s.toLowerCase(), text: counts[s] + " " + s.toLowerCase() })), findings.length ? null : "no findings"),
      findings.length ? el("div", { class: "toolbar" }, el("label", { for: "severity-filter", text: "Show" }), filter, scanButton("Scan again")) : scanButton("Scan again"),
      table);
  };
  await loadFindings(false);
  return region;
}

async function referrersSection(repo, digest) {
  let list = [];
  try {
    list = await allReferrers(repo, digest);
  } catch (e) {
    if (sessionEnded(e)) throw e;
    return errorBox("The referrers could not be read: " + e.message);
  }
  const region = el("section", { id: "referrers", "aria-labelledby": "referrers-title" }, el("h2", { id: "referrers-title", text: "Referrers" }));
  if (list.length === 0) {
    region.append(el("p", { class: "empty", text: "No signatures, SBOMs or attestations refer to this image." }));
    return region;
  }
  region.append(tableWrap(el("caption", { class: "visually-hidden", text: "Referrers" }),
    el("thead", {}, el("tr", {}, ["Kind", "Artifact type", "Digest", "Size", "Annotations"].map((x) => el("th", { scope: "col", text: x })))),
    el("tbody", {}, list.map((r) => el("tr", { class: "referrer" },
      el("td", { text: artifactKind(r.artifactType) }),
      el("td", { class: "muted small", text: r.artifactType || "–" }),
      el("td", {}, el("a", { class: "mono", href: "#/image/" + encodeURIComponent(repo) + "/" + r.digest, title: r.digest, text: shortDigest(r.digest) })),
      el("td", { class: "num", text: fmtSize(r.size) }),
      el("td", { class: "small" }, Object.entries(r.annotations || {}).map(([k, v]) => el("div", { class: "mono", text: k + ": " + v }))))))));
  return region;
}

// ---- the registry ----

// "3 days ago", for the age of what the registry page shows.
function fmtAge(t) {
  if (t === undefined || t === null) return "";
  const s = Math.max(0, Date.now() / 1000 - t);
  const [n, unit] = s < 90 ? [Math.round(s), "second"] : s < 5400 ? [Math.round(s / 60), "minute"]
    : s < 129600 ? [Math.round(s / 3600), "hour"] : [Math.round(s / 86400), "day"];
  return n + " " + unit + (n === 1 ? "" : "s") + " ago";
}

function fmtWhen(t) {
  return t === undefined || t === null ? "–" : fmtTime(t) + " (" + fmtAge(t) + ")";
}

function fmtSeconds(n) {
  if (n === undefined || n === null) return "–";
  if (n === 0) return "0 s";
  if (n % 86400 === 0) return n / 86400 + " d";
  if (n % 3600 === 0) return n / 3600 + " h";
  if (n % 60 === 0) return n / 60 + " min";
  return n + " s";
}

function facts(pairs) {
  return el("dl", { class: "facts" }, pairs.filter(Boolean).map(([k, v, id]) => [el("dt", { text: k }), el("dd", { id }, v)]));
}

function registryStorage(st) {
  const body = el("tbody", { id: "storage-rows" });
  const max = st.largest.length ? Math.max(1, st.largest[0].sizeInBytes) : 1;
  for (const r of st.largest) {
    body.append(el("tr", {},
      el("td", {}, el("a", { href: "#/repo/" + encodeURIComponent(r.repositoryName), text: r.repositoryName })),
      el("td", { class: "num", text: fmtSize(r.sizeInBytes) }),
      el("td", { class: "bar" }, el("meter", { min: "0", max: String(max), value: String(r.sizeInBytes), "aria-label": r.repositoryName + ": " + fmtSize(r.sizeInBytes) })),
      el("td", { class: "num", text: String(r.imageCount) }),
      el("td", { class: "nowrap", text: r.lastPushedAt ? fmtTime(r.lastPushedAt) : "–" })));
  }
  if (st.others.count) {
    body.append(el("tr", { class: "muted" }, el("td", { text: st.others.count + " more repositories" }),
      el("td", { class: "num", text: fmtSize(st.others.bytes) }), el("td", {}), el("td", {}), el("td", {})));
  }
  const wide = st.blobs !== undefined;
  return section("Storage", "storage",
    facts([
      wide ? ["Blobs", st.blobs + " blobs, " + fmtSize(st.blobBytes), "blob-total"] : null,
      wide ? ["Upload sessions", String(st.uploadSessions)] : null,
      ["Repositories you may see", st.repositoryCount + ", " + fmtSize(st.repositoryBytes) + " linked (a blob shared by several counts in each)", "repo-total"],
    ]),
    el("h3", { text: "By repository, largest first" }),
    st.largest.length
      ? tableWrap(el("caption", { class: "visually-hidden", text: "Storage by repository" }),
        el("thead", {}, el("tr", {}, ["Repository", "Size", "Share", "Images", "Last push"].map((h) => el("th", { scope: "col", text: h })))),
        body)
      : el("p", { class: "empty", text: "No repositories to show." }));
}

function registryGc(gc, mayStart, reload) {
  const status = el("div", { id: "gc-status", "aria-live": "polite" });
  const state = !gc.enabled ? "disabled (gc.enabled is false)"
    : gc.running ? "running now" : gc.requested ? "requested, starting" : "idle";
  const parts = [
    facts([
      ["State", state, "gc-state"],
      ["Interval", fmtSeconds(gc.intervalSeconds)],
      ["Grace", fmtSeconds(gc.graceSeconds) + " (blobs younger than this are kept)"],
      gc.enabled ? ["Next periodic pass", fmtWhen(gc.nextRunAt)] : null,
      ["Last pass", gc.runs.length ? fmtWhen(gc.runs[0].finishedAt) + ": freed " + fmtSize(gc.runs[0].bytesFreed) : "none recorded", "gc-last"],
    ]),
  ];
  if (mayStart) {
    const button = el("button", { type: "button", id: "gc-start", disabled: gc.running || gc.requested ? true : undefined, onclick: async () => {
      button.disabled = true;
      status.replaceChildren(el("p", { class: "loading", role: "status", text: "Garbage collection requested…" }));
      try {
        await consoleApi("POST", "gc");
      } catch (e) {
        if (sessionEnded(e)) throw e;
        status.replaceChildren(errorBox("Not started: " + e.message));
        button.disabled = false;
        return;
      }
      const before = gc.runs.length ? gc.runs[0].startedAt : 0;
      const nav = navSeq;
      for (let i = 0; i < 600; i++) {
        await new Promise((r) => setTimeout(r, 500));
        if (nav !== navSeq) return; // the page was left: stop watching
        const now = await consoleApi("GET", "registry");
        if (now.gc.runs.length && now.gc.runs[0].startedAt !== before && now.gc.runs[0].trigger === "requested") {
          guarded(() => registryPage("Garbage collection finished: freed " + fmtSize(now.gc.runs[0].bytesFreed) + "."));
          return;
        }
        status.replaceChildren(el("p", { class: "loading", role: "status", text: now.gc.running ? "Garbage collection is running…" : "Garbage collection requested…" }));
      }
      reload();
    } }, "Run garbage collection now");
    parts.push(el("div", { class: "actions" }, button), status);
  }
  const runs = gc.runs.map((r) => el("tr", {},
    el("td", { class: "nowrap", text: fmtTime(r.startedAt) }),
    el("td", { class: "num", text: ((r.finishedAt - r.startedAt) || 0).toFixed(1) + " s" }),
    el("td", { text: r.trigger }),
    el("td", { text: r.node }),
    el("td", { class: r.result === "ok" ? "" : "error-text", text: r.result + (r.error ? ": " + r.error : "") }),
    el("td", { class: "num", text: String(r.blobsDeleted) }),
    el("td", { class: "num", text: fmtSize(r.bytesFreed) }),
    el("td", { class: "num", text: String(r.uploadsRemoved) })));
  parts.push(el("h3", { text: "Last passes" }),
    el("p", { class: "muted small", text: "Every replica's passes (the replica named by its host and port) and berth gc runs (named by their host), kept in the database (the newest 100)." }),
    runs.length
      ? tableWrap(el("caption", { class: "visually-hidden", text: "Garbage collection passes" }),
        el("thead", {}, el("tr", {}, ["Started", "Took", "Trigger", "Replica", "Result", "Blobs deleted", "Freed", "Uploads removed"].map((h) => el("th", { scope: "col", text: h })))),
        el("tbody", { id: "gc-runs" }, runs))
      : el("p", { class: "empty", id: "gc-runs-empty", text: "No garbage collection pass recorded yet." }));
  return section("Garbage collection", "gc", ...parts);
}

function registryArchive(ar) {
  return section("Archive", "archive",
    facts([
      ["Archive tier", ar.tier ? "on (blobs only archived images use move there)" : "off: archived images keep their bytes in the blob store", "archive-tier"],
      ["Archived images", String(ar.archivedImages), "archive-images"],
      ["Activating", ar.activatingImages + (ar.activatingImages === 1 ? " image" : " images") + " being restored (ACTIVATING)", "archive-activating"],
      ["Archived blobs", ar.blobs + " blobs, " + fmtSize(ar.bytes) + (ar.blobs ? ", taking " + fmtSize(ar.storedBytes) + " in the archive tier" : ""), "archive-blobs"],
    ]));
}

function registryScan(scan) {
  const db = scan.database || {};
  const dbFacts = db.present
    ? [
      ["Records", String(db.records), "vulndb-records"],
      ["Last import", fmtWhen(db.updatedAt), "vulndb-updated"],
      ["Source", db.source],
      ["Ecosystems", db.ecosystems.map((e) => e.name + " (" + e.records + ")").join(", ") + (db.ecosystemCount > db.ecosystems.length ? ", …" : ""), "vulndb-ecosystems"],
      ["Size", fmtSize(db.fileBytes) + ", schema " + db.schemaVersion],
    ].concat(db.shared
      ? [["Shared generation", db.shared.generation + (db.shared.installedHere ? ", in use on this replica" : ", not yet downloaded by this replica"), "vulndb-generation"]]
      : [])
    : [["Database", db.error ? "unreadable: " + db.error : "none imported: scans fail until one is (" + db.hint + ")", "vulndb-records"]];
  return section("Vulnerability scanning", "scanning",
    facts(dbFacts),
    el("h3", { text: "Scan queue" }),
    facts([
      ["Waiting", String(scan.waiting), "scan-waiting"],
      ["Running", String(scan.running), "scan-running"],
      ["Workers", String(scan.workers)],
    ]));
}

function registryJobs(jobs) {
  return section("Background jobs", "jobs",
    tableWrap(el("caption", { class: "visually-hidden", text: "Background jobs" }),
      el("thead", {}, el("tr", {}, ["Job", "State", "Interval", "Last started", "Last finished", "Next run"].map((h) => el("th", { scope: "col", text: h })))),
      el("tbody", { id: "job-rows" }, jobs.map((j) => el("tr", {},
        el("td", { text: j.name }),
        el("td", { text: !j.enabled ? "disabled" : j.running ? "running" : "idle" }),
        el("td", { text: j.intervalSeconds ? fmtSeconds(j.intervalSeconds) : "on demand" }),
        el("td", { class: "nowrap", text: fmtTime(j.lastStartedAt) }),
        el("td", { class: "nowrap", text: fmtTime(j.lastFinishedAt) }),
        el("td", { class: "nowrap", text: fmtTime(j.nextRunAt) }))))));
}

// A horizontal bar of parts ([label, value, class]), widths by share of max;
// read out as its label (the numbers are in the table beside it).
function stackedBar(parts, max, label) {
  const bar = el("div", { class: "barstack", role: "img", "aria-label": label });
  for (const [name, value, cls] of parts) {
    if (!value) continue;
    const seg = el("span", { class: "seg " + cls, title: name + ": " + value });
    seg.style.width = Math.max(0.5, (100 * value) / Math.max(1, max)) + "%";
    bar.append(seg);
  }
  return bar;
}

const SVGNS = "http://www.w3.org/2000/svg";

function svgEl(tag, attrs) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  return e;
}

// The sum of series' columns in bucket b.
const seriesTotal = (b, series) => series.reduce((n, [i]) => n + b[i], 0);

// A chart over time: a column per bucket of view (its slots from view.from to
// view.to), stacked from series ([column index, class]); read out as label.
// A full column is scaleMax (default: this chart's busiest bucket); a column
// with anything in it is at least TC_MIN_HEIGHT of the chart tall, so that a
// quiet bucket still shows beside a busy one.
const TC_MIN_HEIGHT = 2;
function timeChart(view, series, label, id, scaleMax) {
  const slots = Math.max(1, Math.round((view.to - view.from) / view.step));
  const max = Math.max(1, scaleMax || 0, ...view.buckets.map((b) => seriesTotal(b, series)));
  const H = 100;
  const svg = svgEl("svg", { viewBox: "0 0 " + slots + " " + H, preserveAspectRatio: "none", class: "timechart", role: "img", "aria-label": label, id });
  svg.append(svgEl("rect", { x: 0, y: 0, width: slots, height: H, class: "tc-bg" }));
  for (const b of view.buckets) {
    const x = Math.floor((b[0] - view.from) / view.step);
    const total = seriesTotal(b, series);
    if (x < 0 || x >= slots || !total) continue;
    const column = Math.max(TC_MIN_HEIGHT, (H * total) / max);
    let y = H;
    for (const [i, cls] of series) {
      if (!b[i]) continue;
      const h = (column * b[i]) / total;
      y -= h;
      svg.append(svgEl("rect", { x, y, width: 1, height: h, class: "tc-" + cls }));
    }
  }
  return svg;
}

// The columns of a history bucket with requests by status class: [index, chart
// class, name].
const historyClasses = [[1, "ok", "2xx"], [2, "redirect", "3xx"], [3, "client", "4xx"], [4, "server", "5xx"], [5, "other", "other"]];

// What a chart of requests over buckets shows, in words: the total, by status
// class, and the busiest bucket (unit: "minute" or "hour").
function requestsSummary(buckets, unit) {
  const sum = (i) => buckets.reduce((n, b) => n + b[i], 0);
  const reqs = (b) => b[1] + b[2] + b[3] + b[4] + b[5];
  const total = sum(1) + sum(2) + sum(3) + sum(4) + sum(5);
  const byClass = historyClasses.filter(([i]) => sum(i)).map(([i, , k]) => sum(i) + " " + k).join(", ");
  const peak = buckets.reduce((best, b) => (reqs(b) > reqs(best) ? b : best), buckets[0] || [0, 0, 0, 0, 0, 0]);
  return total + " in all" + (byClass ? " (" + byClass + ")" : "") +
    (total ? ", at most " + reqs(peak) + " in the " + unit + " from " + fmtTime(peak[0]) : "");
}

// Each API's requests over the view's buckets (view.apiBuckets), a small chart
// per API, with its figures in words beside it and as the chart's label; the
// list gets id. By default the charts share one scale (a full column is the
// busiest bucket of any API), said above them: side by side, a reader compares
// their heights, and an API with a few requests drawn as tall as one with
// thousands would mislead (its quiet buckets still show as slivers). A button
// gives each chart its own scale, to see a quiet API's shape; then every
// label says so and names the chart's own full column.
let apiChartsOwnScale = false;
function apiCharts(view, title, unit, start, id) {
  const series = view.apiBuckets || [];
  if (!series.length) return el("p", { class: "empty", id: id + "-empty", text: "No request recorded yet." });
  const cols = historyClasses.map(([i, c]) => [i, c]);
  const peak = (s) => Math.max(1, ...s.buckets.map((b) => seriesTotal(b, cols)));
  const shared = Math.max(...series.map(peak));
  const per = (n) => n + (n === 1 ? " request" : " requests") + " in a " + unit;
  const holder = el("div", { id: id + "-holder" });
  const draw = () => {
    const own = apiChartsOwnScale;
    const scaleText = own
      ? "Each chart on its own scale: a full column is that API's busiest " + unit + ", so compare the numbers, not the heights."
      : "One scale for every API: a full column is " + per(shared) + ".";
    const toggle = el("button", { type: "button", class: "secondary small", id: id + "-scale-toggle", "aria-pressed": String(own), onclick: () => {
      apiChartsOwnScale = !apiChartsOwnScale;
      draw();
      const b = document.getElementById(id + "-scale-toggle");
      if (b) b.focus();
    } }, "Each chart on its own scale");
    holder.replaceChildren(
      el("div", { class: "toolbar" }, el("p", { class: "muted small", id: id + "-scale", text: scaleText + " A " + unit + " with any request shows at least as a sliver." }), toggle),
      el("div", { class: "apicharts", id }, series.map((s) => {
        const summary = requestsSummary(s.buckets, unit);
        const scale = own ? peak(s) : shared;
        const label = s.api + " requests " + title + ": " + summary + ". " +
          (own ? "On its own scale: a full column is " + per(scale) + "." : "One scale for every API: a full column is " + per(scale) + ".");
        return el("figure", { class: "apichart", id: id + "-" + s.api },
          el("figcaption", {}, el("strong", { text: s.api }), " ", el("span", { class: "muted small", text: summary })),
          timeChart({ from: view.from, to: view.to, step: view.step, buckets: s.buckets }, cols, label, id + "-" + s.api + "-chart", scale),
          el("div", { class: "tc-axis", "aria-hidden": "true" }, el("span", { text: start }), el("span", { text: "now" })));
      })));
  };
  draw();
  return holder;
}

// The activity history: every replica's requests, per minute over the last
// day or per hour over the last 30 days, from the database.
function registryHistory(hist) {
  const views = { minutes: ["per minute, the last 24 hours", "minute", "24 hours ago"], hours: ["per hour, the last 30 days", "hour", "30 days ago"] };
  const body = el("div", { id: "history-body" });
  const buttons = {};
  const draw = (name) => {
    const view = hist[name];
    const [title, unit, start] = views[name];
    for (const [n, b] of Object.entries(buttons)) b.setAttribute("aria-pressed", String(n === name));
    const sum = (i) => view.buckets.reduce((n, b) => n + b[i], 0);
    const total = sum(1) + sum(2) + sum(3) + sum(4) + sum(5);
    const byClass = historyClasses.filter(([i]) => sum(i)).map(([i, , k]) => sum(i) + " " + k).join(", ");
    const reqLabel = "Requests " + title + ": " + requestsSummary(view.buckets, unit);
    const bytesLabel = "Bytes " + title + ": " + fmtSize(sum(6)) + " received, " + fmtSize(sum(7)) + " sent";
    const axis = () => el("div", { class: "tc-axis", "aria-hidden": "true" }, el("span", { text: start }), el("span", { text: "now" }));
    body.replaceChildren(
      el("h3", { text: "Requests " + title }),
      timeChart(view, historyClasses.map(([i, c]) => [i, c]), reqLabel, "history-requests-" + name), axis(),
      el("h3", { text: "Bytes " + title }),
      timeChart(view, [[6, "in"], [7, "out"]], bytesLabel, "history-bytes-" + name), axis(),
      facts([
        ["Requests", String(total) + (byClass ? " (" + byClass + ")" : ""), "history-requests"],
        ["Bytes", fmtSize(sum(6)) + " received, " + fmtSize(sum(7)) + " sent", "history-bytes"],
        ["Refused authentications", String(sum(8)), "history-auth"],
      ]),
      el("h3", { text: "By API, " + title }),
      apiTable(view.apis || [], "history-api-rows", "Requests and bytes by API, " + title),
      el("h3", { text: "Requests by API " + title }),
      apiCharts(view, title, unit, start, "history-api-charts"));
  };
  for (const name of Object.keys(views)) {
    buttons[name] = el("button", { type: "button", class: "secondary", id: "history-" + name, "aria-pressed": "false", onclick: () => draw(name) }, name === "minutes" ? "Last 24 hours" : "Last 30 days");
  }
  draw("minutes");
  return section("Activity over time", "history",
    el("p", { class: "muted small", text: hist.sampleSeconds
      ? "Every replica's requests, kept in the database (written every " + fmtSeconds(hist.sampleSeconds) + "): restarts keep them."
      : "Not recorded: metrics.activity_sample_seconds is 0." }),
    el("div", { class: "toolbar", role: "group", "aria-label": "Time range" }, buttons.minutes, buttons.hours),
    el("div", { class: "legend", "aria-hidden": "true" }, [["2xx", "ok"], ["3xx", "redirect"], ["4xx", "client"], ["5xx", "server"], ["other", "other"], ["received", "in"], ["sent", "out"]]
      .map(([k, c]) => el("span", { class: "key" }, el("span", { class: "seg " + c }), k))),
    body);
}

// Requests and bytes by API ([{api, 2xx, ..., bytesIn, bytesOut}]): a row per
// API with its bars (read out with their numbers) and figures; tbody gets id.
function apiTable(apis, id, caption) {
  const classes = [["2xx", "ok"], ["3xx", "redirect"], ["4xx", "client"], ["5xx", "server"], ["other", "other"]];
  if (!apis.length) return el("p", { class: "empty", id: id + "-empty", text: "No request recorded yet." });
  const total = (r) => classes.reduce((n, [k]) => n + r[k], 0);
  const maxReq = Math.max(1, ...apis.map(total));
  const maxBytes = Math.max(1, ...apis.map((r) => r.bytesIn + r.bytesOut));
  const rows = apis.map((r) => el("tr", {},
    el("th", { scope: "row", text: r.api }),
    el("td", { class: "chart" }, stackedBar(classes.map(([k, c]) => [k, r[k], c]), maxReq,
      r.api + ": " + (classes.filter(([k]) => r[k]).map(([k]) => r[k] + " " + k).join(", ") || "no requests"))),
    ...classes.map(([k]) => el("td", { class: "num", text: String(r[k]) })),
    el("td", { class: "chart" }, stackedBar([["in", r.bytesIn, "in"], ["out", r.bytesOut, "out"]], maxBytes,
      r.api + ": " + fmtSize(r.bytesIn) + " received, " + fmtSize(r.bytesOut) + " sent")),
    el("td", { class: "num", text: fmtSize(r.bytesIn) }),
    el("td", { class: "num", text: fmtSize(r.bytesOut) })));
  return tableWrap(el("caption", { class: "visually-hidden", text: caption }),
    el("thead", {}, el("tr", {}, ["API", "Requests", ...classes.map(([k]) => k), "Bytes", "Received", "Sent"].map((h) => el("th", { scope: "col", text: h })))),
    el("tbody", { id }, rows));
}

// The counters since the process started; their per-API table only when the
// history (which has it over the chosen time range) is not recorded.
function registryActivity(a, withApis) {
  const classes = [["2xx", "ok"], ["3xx", "redirect"], ["4xx", "client"], ["5xx", "server"], ["other", "other"]];
  return section("Activity since the server started", "activity",
    el("p", { class: "muted small", text: "Counters since " + fmtWhen(a.since) + " (the same as /metrics); a restart resets them." }),
    withApis ? [
      el("div", { class: "legend", "aria-hidden": "true" }, classes.map(([k, c]) => el("span", { class: "key" }, el("span", { class: "seg " + c }), k)),
        el("span", { class: "key" }, el("span", { class: "seg in" }), "received"), el("span", { class: "key" }, el("span", { class: "seg out" }), "sent")),
      apiTable(a.requests, "activity-rows", "Requests and bytes by API since the server started"),
    ] : null,
    facts([
      ["Garbage collection", a.gc.passesOk + " passes" + (a.gc.passesFailed ? ", " + a.gc.passesFailed + " failed" : "") + "; " + a.gc.blobsDeleted + " blobs, " + fmtSize(a.gc.bytesFreed) + " freed", "activity-gc"],
      ["Lifecycle", a.lifecycle.runs + " runs; " + a.lifecycle.imagesEvaluated + " images evaluated, " + a.lifecycle.imagesExpired + " expired"],
      ["Scans", a.scans.complete + " complete, " + a.scans.failed + " failed", "activity-scans"],
      ["Refused authentications", String(a.authFailures), "activity-auth"],
      ["Open connections", String(a.openConnections)],
    ]));
}

function registryConfig(doc) {
  const c = doc.config;
  const yes = (b) => (b ? "yes" : "no");
  return section("Server", "server",
    facts([
      ["Version", "berth " + doc.version, "server-version"],
      ["Running since", fmtWhen(doc.startedAt)],
      ["Listen", c.listen],
      ["Replica name", c.replicaName, "server-replica"],
      ["Public URL", c.publicUrl],
      ["TLS", yes(c.tls)],
      ["Data root", c.root],
      c.configFile ? ["Config file", c.configFile] : null,
      ["Storage", c.storageBackend + (c.s3Bucket ? " (bucket " + c.s3Bucket + " at " + c.s3Endpoint + ")" : "")],
      ["Metadata", c.metadataBackend],
      ["Registry", c.registryId + " in " + c.region],
      ["Auth", c.authScheme + (c.authRequired ? ", required" : "") + (c.anonymous ? ", anonymous browsing of public repositories" : "")],
      ["Deletes", yes(c.deleteEnabled)],
      ["Create on push", yes(c.autoCreate)],
      ["Upload expiry", fmtSeconds(c.uploadExpirySeconds)],
      ["Lifecycle", c.lifecycleEnabled ? "every " + fmtSeconds(c.lifecycleIntervalSeconds) : "disabled"],
      ["Scan", c.scanWorkers + " workers" + (c.scanHook ? ", external hook" : ", built-in scanner")],
      ["Metrics", c.metricsEnabled ? "/metrics" : "off"],
      ["Console sessions", fmtSeconds(c.consoleSessionTtlSeconds)],
    ]),
    el("p", { class: "muted small", text: "Secrets (keys, passwords, connection strings) are never shown." }));
}

async function registryPage(flash) {
  const show = pageShow(); // a page left before it loaded draws nothing
  if (session && session.anonymous) {
    show(el("h1", { text: "Registry" }), el("p", { class: "notice", id: "registry-signin", text: "The registry's state is for access keys: sign in to see it." }),
      el("p", {}, el("a", { href: "#/", text: "Back to the public repositories" })));
    return;
  }
  show(el("h1", { text: "Registry" }), el("p", { class: "loading", role: "status", text: "Loading the registry's state…" }));
  const doc = await consoleApi("GET", "registry");
  const reload = () => guarded(() => registryPage());
  if (doc.scope !== "registry") {
    show(el("h1", { text: "Registry" }),
      el("div", { class: "toolbar" }, el("button", { type: "button", class: "secondary", id: "registry-refresh", onclick: reload }, "Refresh")),
      el("p", { class: "notice", id: "registry-scope", text: "Your key sees its own repositories' figures. The registry's totals, garbage collection, jobs, activity and the server's configuration are shown to keys allowed ecr:DescribeRegistry." }),
      el("div", { class: "registry" }, registryStorage(doc.storage)));
    return;
  }
  show(el("h1", { text: "Registry" }),
    flash ? el("p", { class: "notice", role: "status", id: "registry-flash", text: flash }) : null,
    el("div", { class: "toolbar" }, el("button", { type: "button", class: "secondary", id: "registry-refresh", onclick: reload }, "Refresh")),
    el("div", { class: "registry" },
      registryStorage(doc.storage),
      registryArchive(doc.archive),
      registryGc(doc.gc, doc.mayStartGc, reload),
      registryScan(doc.scan),
      registryJobs(doc.jobs),
      registryHistory(doc.history),
      registryActivity(doc.activity, !doc.history.sampleSeconds),
      registryConfig(doc)));
}

// ---- routing ----

// The OCI repository name grammar (as the server's): a name from the URL's
// fragment goes into /v2 paths, so "..%2F" in it must not reach them.
const REPO_NAME = /^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$/;

function repoFrom(part) {
  let name;
  try {
    name = decodeURIComponent(part);
  } catch (e) {
    return null;
  }
  return REPO_NAME.test(name) && name.length <= 256 ? name : null;
}

function route() {
  navSeq++;
  if (!session || (session.authEnforced && !session.signedIn && !session.anonymous)) {
    signInPage();
    return;
  }
  for (const d of document.querySelectorAll("dialog")) d.remove();
  const h = location.hash.replace(/^#\/?/, "");
  let m;
  if ((m = h.match(/^image\/([^/]+)\/(sha256:[0-9a-f]{64})$/)) && repoFrom(m[1])) {
    const repo = repoFrom(m[1]);
    const digest = m[2];
    guarded(() => imagePage(repo, digest));
  } else if ((m = h.match(/^repo\/([^/]+)\/settings$/)) && repoFrom(m[1])) {
    const repo = repoFrom(m[1]);
    guarded(() => settingsPage(repo));
  } else if ((m = h.match(/^repo\/([^/]+)\/lifecycle$/)) && repoFrom(m[1])) {
    const repo = repoFrom(m[1]);
    guarded(() => lifecyclePage(repo));
  } else if (h === "registry") {
    guarded(() => registryPage());
  } else if ((m = h.match(/^repo\/([^/]+)$/)) && repoFrom(m[1])) {
    const repo = repoFrom(m[1]);
    guarded(() => repositoryPage(repo));
  } else {
    guarded(repositoriesPage);
  }
}

async function start() {
  document.getElementById("signout").addEventListener("click", signOut);
  // "Skip to content" moves the focus to the page's content; followed as a link
  // its #main would be a route (the repository list), leaving the page
  document.querySelector("a.skip").addEventListener("click", (ev) => {
    ev.preventDefault();
    main().focus();
  });
  try {
    session = await consoleApi("GET", "session");
  } catch (e) {
    show(el("h1", { text: "berth is not answering" }), errorBox(e.message));
    return;
  }
  renderWho();
  window.addEventListener("hashchange", route);
  route();
}

document.addEventListener("DOMContentLoaded", start);
