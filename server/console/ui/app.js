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
let repoCache = null; // all repositories, fetched once per visit of the list
const listState = { query: "", page: 0 };

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
  m.replaceChildren(...nodes);
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
      try {
        await navigator.clipboard.writeText(text);
        b.textContent = "Copied";
      } catch (e) {
        b.textContent = "Select and copy";
      }
      setTimeout(() => (b.textContent = "Copy"), 1500);
    },
  }, "Copy");
}

// ---- calls to berth ----

class ApiError extends Error {
  constructor(message, type, status) {
    super(message);
    this.type = type;
    this.status = status;
  }
}

function sessionEnded(err) {
  return err.type === "UnrecognizedClientException" || err.type === "SessionEnded";
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
    const type = r.status === 403 && /session/.test(msg) ? "SessionEnded" : "";
    throw new ApiError(msg, type, r.status);
  }
  return { text, type: r.headers.get("Content-Type"), digest: r.headers.get("Docker-Content-Digest") };
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
  if (session && session.signedIn) {
    name.textContent = session.principal ? session.principal.replace(/^.*:user\//, "") + " (" + session.accessKeyId + ")" : session.accessKeyId;
    document.getElementById("signout").hidden = false;
    who.hidden = false;
  } else if (session && !session.authEnforced) {
    name.textContent = "Anonymous: no access keys exist";
    document.getElementById("signout").hidden = true;
    who.hidden = false;
  } else {
    who.hidden = true;
  }
}

function signInPage(notice) {
  session = { signedIn: false, authEnforced: true };
  repoCache = null;
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
  show(form);
  akid.focus();
}

async function signOut() {
  try {
    await consoleApi("DELETE", "session");
  } catch (e) {
    /* the session is gone either way */
  }
  history.replaceState(null, "", "#/"); // no hashchange: the notice stays
  signInPage("You have signed out.");
}

// Run a page's loader; a session that ended leads back to the sign-in.
async function guarded(fn) {
  try {
    await fn();
  } catch (e) {
    if (sessionEnded(e)) {
      signInPage("Your session has expired. Sign in again.");
    } else {
      show(el("h1", { text: "Something went wrong" }), errorBox(e.message), el("p", {}, el("a", { href: "#/" }, "Back to the repositories")));
    }
  }
}

// ---- repositories ----

async function repositoriesPage() {
  show(el("h1", { text: "Repositories" }), el("p", { class: "loading", role: "status", text: "Loading repositories…" }));
  if (repoCache === null) {
    const repos = await allPages("DescribeRepositories", {}, "repositories");
    repos.sort((a, b) => a.repositoryName.localeCompare(b.repositoryName));
    repoCache = repos;
  }
  const search = el("input", { type: "search", id: "repo-search", placeholder: "Filter by name", value: listState.query, "aria-label": "Filter repositories by name" });
  const region = el("div", { id: "repo-list" });
  const refresh = el("button", { type: "button", class: "secondary", onclick: () => { repoCache = null; guarded(repositoriesPage); } }, "Refresh");
  search.addEventListener("input", () => {
    listState.query = search.value;
    listState.page = 0;
    renderRepoList(region);
  });
  show(el("h1", { text: "Repositories" }), el("div", { class: "toolbar" }, search, refresh), region);
  renderRepoList(region);
}

function renderRepoList(region) {
  const q = listState.query.trim().toLowerCase();
  const matching = repoCache.filter((r) => r.repositoryName.toLowerCase().includes(q));
  if (repoCache.length === 0) {
    region.replaceChildren(el("div", { class: "empty" },
      el("p", { text: "No repositories yet." }),
      el("p", { class: "muted" }, "Push an image to create one: ", el("code", { text: "docker push " + host() + "/NAME:TAG" }))));
    return;
  }
  if (matching.length === 0) {
    region.replaceChildren(el("p", { class: "empty", role: "status", text: "No repository matches “" + listState.query + "”." }));
    return;
  }
  const pages = Math.ceil(matching.length / PAGE_SIZE);
  listState.page = Math.min(listState.page, pages - 1);
  const start = listState.page * PAGE_SIZE;
  const rows = matching.slice(start, start + PAGE_SIZE);
  const body = el("tbody", {});
  for (const r of rows) {
    const count = el("td", { class: "num", text: "…" });
    body.append(el("tr", {},
      el("th", { scope: "row" }, el("a", { href: "#/repo/" + encodeURIComponent(r.repositoryName), text: r.repositoryName })),
      count,
      el("td", { text: fmtTime(r.createdAt) }),
      el("td", { text: r.imageScanningConfiguration && r.imageScanningConfiguration.scanOnPush ? "on" : "off" }),
      el("td", { text: (r.imageTagMutability || "MUTABLE").toLowerCase() })));
    allPages("DescribeImages", { repositoryName: r.repositoryName }, "imageDetails")
      .then((imgs) => (count.textContent = String(imgs.length)))
      .catch(() => (count.textContent = "?"));
  }
  const nav = el("nav", { class: "pager", "aria-label": "Pages" },
    el("button", { type: "button", class: "secondary", disabled: listState.page === 0, onclick: () => { listState.page--; renderRepoList(region); } }, "Previous"),
    el("span", { role: "status", text: `${start + 1}–${start + rows.length} of ${matching.length}` }),
    el("button", { type: "button", class: "secondary", disabled: listState.page >= pages - 1, onclick: () => { listState.page++; renderRepoList(region); } }, "Next"));
  region.replaceChildren(
    tableWrap(
      el("caption", { class: "visually-hidden", text: "Repositories" }),
      el("thead", {}, el("tr", {}, ["Name", "Images", "Created", "Scan on push", "Tag mutability"].map((h) => el("th", { scope: "col", text: h })))),
      body),
    nav);
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

async function repositoryPage(repo) {
  show(el("h1", { text: repo }), el("p", { class: "loading", role: "status", text: "Loading images…" }));
  const [images, perms] = await Promise.all([
    allPages("DescribeImages", { repositoryName: repo }, "imageDetails"),
    consoleApi("GET", "permissions?repository=" + encodeURIComponent(repo)),
  ]);
  const mayDelete = !!perms.actions["ecr:BatchDeleteImage"];
  images.sort((a, b) => (b.imagePushedAt || 0) - (a.imagePushedAt || 0));
  const status = el("div", { id: "repo-status", "aria-live": "polite" });
  const crumbs = el("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, el("a", { href: "#/", text: "Repositories" }), " / ", repo);
  if (images.length === 0) {
    show(crumbs, el("h1", { text: repo }), status, el("div", { class: "empty" },
      el("p", { text: "This repository has no images." }),
      el("p", { class: "muted" }, "Push one: ", el("code", { text: "docker push " + host() + "/" + repo + ":TAG" }))));
    return;
  }
  const body = el("tbody", {});
  for (const img of images) {
    const tags = (img.imageTags || []).slice().sort();
    const tagCell = el("td", { class: "tags" });
    if (tags.length === 0) tagCell.append(el("span", { class: "muted", text: "untagged" }));
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
    body.append(el("tr", {},
      tagCell,
      el("td", {}, el("a", { href: "#/image/" + encodeURIComponent(repo) + "/" + img.imageDigest, class: "mono", title: img.imageDigest, text: shortDigest(img.imageDigest) }), " ", copyButton(img.imageDigest, "digest")),
      el("td", { class: "num", text: fmtSize(img.imageSizeInBytes) }),
      el("td", { text: fmtTime(img.imagePushedAt) }),
      el("td", { text: img.lastRecordedPullTime ? fmtTime(img.lastRecordedPullTime) : "never" }),
      el("td", { class: "muted small", text: (img.imageManifestMediaType || "").replace(/^application\/vnd\./, "") }),
      mayDelete ? actions : null));
  }
  const newest = images[0];
  const ref = host() + "/" + repo + ((newest.imageTags || []).length ? ":" + newest.imageTags.slice().sort()[0] : "@" + newest.imageDigest);
  const heads = ["Tags", "Digest", "Size", "Pushed", "Last pull", "Media type"];
  if (mayDelete) heads.push("Actions");
  show(crumbs, el("h1", { text: repo }), status,
    el("p", { class: "muted", text: images.length + (images.length === 1 ? " image" : " images") + (mayDelete ? "" : " · your key may not delete images here") }),
    tableWrap( el("caption", { class: "visually-hidden", text: "Images of " + repo }),
      el("thead", {}, el("tr", {}, heads.map((h) => el("th", { scope: "col", text: h })))), body),
    pullCommands(ref));
}

// ---- an image ----

function jsonBlock(title, obj) {
  return el("details", { open: true }, el("summary", { text: title }), el("pre", { class: "json", tabindex: "0", text: JSON.stringify(obj, null, 2) }));
}

async function imagePage(repo, digest) {
  show(el("h1", { text: repo + "@" + shortDigest(digest) }), el("p", { class: "loading", role: "status", text: "Loading the image…" }));
  const m = await v2(repo + "/manifests/" + digest, MANIFEST_TYPES);
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
    el("dt", { text: "Last pull" }), el("dd", { text: details && details.lastRecordedPullTime ? fmtTime(details.lastRecordedPullTime) : "never" }));
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
    parts.push(jsonBlock("Index", manifest));
    show(...parts);
    return;
  }

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
  parts.push(jsonBlock("Manifest", manifest));
  if (config) parts.push(jsonBlock("Config", config));
  show(...parts);
}

// ---- routing ----

function route() {
  if (!session || (session.authEnforced && !session.signedIn)) {
    signInPage();
    return;
  }
  const h = location.hash.replace(/^#\/?/, "");
  let m;
  if ((m = h.match(/^image\/([^/]+)\/(sha256:[0-9a-f]{64})$/))) {
    const repo = decodeURIComponent(m[1]);
    const digest = m[2];
    guarded(() => imagePage(repo, digest));
  } else if ((m = h.match(/^repo\/([^/]+)$/))) {
    const repo = decodeURIComponent(m[1]);
    guarded(() => repositoryPage(repo));
  } else {
    guarded(repositoriesPage);
  }
}

async function start() {
  document.getElementById("signout").addEventListener("click", signOut);
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
