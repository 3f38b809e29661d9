// End-to-end tests of the browser app: the real server binary, Debian's Chromium, driven by
// playwright-core. Run with e2e/run.sh (or `node --test` here once the binary is built).
//
// Environment:
//   ROOMCAST_BIN     the server binary (default: ../target/debug/roomcast)
//   CHROMIUM         the browser (default: /usr/bin/chromium)
//   E2E_KEEP_LOGS=1  print the server log even when every test passes

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync, createWriteStream, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const BIN = resolve(process.env.ROOMCAST_BIN || join(here, "..", "target", "debug", "roomcast"));
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const SHOTS = join(here, "screenshots");
const ADMIN_TOKEN = "e2e-admin-token-0123456789abcdef";
const PASSWORD = "correct horse battery";
const ADMIN = "boss"; // created with the CLI before the server starts
const WAIT = 10_000;

const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 360, height: 740 };

let server; // child process
let serverLog; // path
let base; // http://127.0.0.1:PORT, the port the server picked and logged
let dataDir;
let browser;
const problems = []; // page errors and CSP violations seen by any page
let failed = false;

/** A test that records its failure (for printing the server log at the end). */
function step(name, fn, timeout = 90_000) {
  test(name, { timeout }, async (t) => {
    try {
      await fn(t);
    } catch (err) {
      failed = true;
      throw err;
    }
  });
}

// ---------------------------------------------------------------------------------------
// Server

function serverEnv(dir = dataDir, extra = {}) {
  return {
    ...process.env,
    ROOMCAST_ENVIRONMENT: "development",
    ROOMCAST__SERVER__HOST: "127.0.0.1",
    // Any free port: the server binds it and logs which (see `listeningPort`), so no other
    // process can take it between choosing and binding.
    ROOMCAST__SERVER__PORT: "0",
    ROOMCAST__SERVER__WORKERS: "2",
    ROOMCAST__SERVER__DATA_DIR: dir,
    ROOMCAST__DATABASE__URL: `sqlite://${dir}/rc.db?mode=rwc`,
    ROOMCAST__RATE_LIMIT__AUTH_PER_MIN: "1000",
    ROOMCAST__RATE_LIMIT__MESSAGES_PER_SEC: "1000",
    ROOMCAST__RATE_LIMIT__MESSAGES_BURST: "1000",
    ROOMCAST__ADMIN__API_TOKEN: ADMIN_TOKEN,
    ROOMCAST__SESSION__SECURE: "false",
    RUST_LOG: process.env.RUST_LOG || "info",
    NO_COLOR: "1",
    ...extra,
  };
}

/** Runs a CLI subcommand of the binary (e.g. creating the admin). */
function cli(args, input, env) {
  return new Promise((ok, fail) => {
    const p = spawn(BIN, args, { env, stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    p.stdout.on("data", (d) => (out += d));
    p.stderr.on("data", (d) => (out += d));
    p.on("error", fail);
    p.on("exit", (code) => (code === 0 ? ok(out) : fail(new Error(`${args.join(" ")}: ${code}\n${out}`))));
    p.stdin.end(input);
  });
}

const ANSI = /\x1b\[[0-9;]*m/g;
/** main.rs: `tracing::info!(port = app.port(), "roomcast listening")`, e.g.
 * `2025-01-01T00:00:00.000000Z  INFO roomcast: roomcast listening port=41234`. */
const LISTENING = /roomcast listening\b.*\bport=(\d+)/;

/** The port `child` logs it listens on, read off its stderr (the tracing writer). */
function listeningPort(child, ms) {
  return new Promise((ok, fail) => {
    let partial = "";
    const seen = [];
    const timer = setTimeout(
      () => done(new Error(`no "roomcast listening … port=" line within ${ms} ms:\n${seen.join("\n")}`)),
      ms,
    );
    const onData = (chunk) => {
      const lines = (partial + chunk.toString()).split("\n");
      partial = lines.pop();
      for (const raw of lines) {
        const line = raw.replace(ANSI, "");
        seen.push(line);
        const m = LISTENING.exec(line);
        if (m) return done(null, Number(m[1]));
      }
    };
    const onExit = (code) =>
      done(new Error(`server exited with ${code} before listening:\n${seen.join("\n")}`));
    function done(err, port) {
      clearTimeout(timer);
      child.stderr.off("data", onData);
      child.off("exit", onExit);
      if (err) fail(err);
      else ok(port);
    }
    child.stderr.on("data", onData);
    child.once("exit", onExit);
  });
}

async function waitHealthy(url, ms, child = server) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      const res = await fetch(`${url}/healthz`);
      if (res.ok) return;
    } catch {
      /* not up yet */
    }
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}`);
    if (Date.now() > deadline) throw new Error("server did not become healthy");
    await new Promise((r) => setTimeout(r, 100));
  }
}

before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "roomcast-e2e-"));
  mkdirSync(SHOTS, { recursive: true });
  const env = serverEnv();
  await cli(["user", "create", ADMIN, "--admin"], `${PASSWORD}\n`, env);
  serverLog = join(dataDir, "server.log");
  const log = createWriteStream(serverLog);
  // Run from the repository root, where static/ lives.
  server = spawn(BIN, ["serve"], { env, cwd: join(here, ".."), stdio: ["ignore", "pipe", "pipe"] });
  server.stdout.pipe(log);
  server.stderr.pipe(log);
  const port = await listeningPort(server, 30_000);
  base = `http://127.0.0.1:${port}`;
  await waitHealthy(base, 30_000);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
});

/**
 * A second server of its own (own data directory), for a test that needs other settings
 * (`extra` environment, e.g. a tight rate limit); stopped when test `t` ends. Its base URL.
 */
async function extraServer(t, extra) {
  const dir = mkdtempSync(join(tmpdir(), "roomcast-e2e-extra-"));
  const env = serverEnv(dir, extra);
  const child = spawn(BIN, ["serve"], { env, cwd: join(here, ".."), stdio: ["ignore", "pipe", "pipe"] });
  const log = createWriteStream(join(dir, "server.log"));
  child.stdout.pipe(log);
  child.stderr.pipe(log);
  t.after(async () => {
    if (child.exitCode === null) {
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      if (child.exitCode === null) child.kill("SIGKILL");
    }
    rmSync(dir, { recursive: true, force: true });
  });
  const port = await listeningPort(child, 30_000);
  const url = `http://127.0.0.1:${port}`;
  await waitHealthy(url, 30_000, child);
  return url;
}

after(async () => {
  if (browser) await browser.close().catch(() => {});
  if (server && server.exitCode === null) {
    const exited = new Promise((r) => server.once("exit", r));
    server.kill("SIGTERM");
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
    if (server.exitCode === null) server.kill("SIGKILL");
  }
  if ((failed || process.env.E2E_KEEP_LOGS) && serverLog) {
    try {
      console.log(`--- server log (${serverLog}) ---\n${readFileSync(serverLog, "utf8").split("\n").slice(-60).join("\n")}`);
    } catch {
      /* no log */
    }
  }
  if (!process.env.E2E_KEEP_LOGS && dataDir) rmSync(dataDir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------
// Browser helpers

let seq = 0;
/** A name no other test uses (usernames and room names alike): `prefix` and a number. */
function unique(prefix) {
  seq += 1;
  return `${prefix}${seq}`;
}

/**
 * A fresh browser context and page, closed when test `t` ends (whether it passed or not);
 * `options` go to the context (e.g. `colorScheme`).
 */
async function newUserPage(t, viewport, options = {}) {
  const context = await browser.newContext({ viewport, baseURL: base, ...options });
  t.after(() => context.close().catch(() => {}));
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT);
  page.on("pageerror", (err) => problems.push(`pageerror: ${err.message}`));
  page.on("console", (msg) => {
    const text = msg.text();
    if (msg.type() === "error" && /Content Security Policy|Refused to/i.test(text)) {
      problems.push(`console: ${text}`);
    }
  });
  return { context, page };
}

/** Registers a new user through the API and logs `context` in as it; its name. */
async function register(context, prefix) {
  const name = unique(prefix);
  // The context's request client shares the pages' cookie jar.
  const res = await context.request.post("/api/register", { data: { username: name, password: PASSWORD } });
  assert.equal(res.status(), 201, `registering ${name}: ${await res.text()}`);
  return name;
}

/**
 * A new user of its own, registered through the API (the form has its own test), on the
 * chat page with its stream live: `{context, page, name}`.
 */
async function newUser(t, prefix, viewport = DESKTOP, options = {}) {
  const { context, page } = await newUserPage(t, viewport, options);
  const name = await register(context, prefix);
  await page.goto("/");
  await waitLive(page);
  return { context, page, name };
}

/** Two new users (a desktop and a phone) in a new room of their own, seeing each other. */
async function newPair(t, roomPrefix) {
  const room = unique(roomPrefix);
  const alice = await newUser(t, "alice", DESKTOP);
  const bob = await newUser(t, "bob", PHONE);
  await joinRoom(alice.page, room);
  await joinRoom(bob.page, room);
  await waitPresence(alice.page, [alice.name, bob.name]);
  await waitPresence(bob.page, [alice.name, bob.name]);
  return { alice, bob, room };
}

/** Calls the JSON API from `page` (its session): `{status, body}` (body null when not JSON). */
function pageApi(page, method, path, body) {
  return page.evaluate(
    async ({ method, path, body }) => {
      const init = { method, headers: {} };
      if (body !== undefined) {
        init.headers["Content-Type"] = "application/json";
        init.body = JSON.stringify(body);
      }
      const res = await fetch(path, init);
      let data = null;
      try {
        data = await res.json();
      } catch {
        /* 204 or not JSON */
      }
      return { status: res.status, body: data };
    },
    { method, path, body },
  );
}

/** An admin route with the bearer token: its status. */
async function adminCall(method, path) {
  const res = await fetch(`${base}${path}`, { method, headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } });
  return res.status;
}

/** Closes every stream of `username` from the server side (the admin API). */
async function disconnect(username) {
  const res = await fetch(`${base}/api/admin/users/${username}/disconnect`, {
    method: "POST",
    headers: { Authorization: `Bearer ${ADMIN_TOKEN}` },
  });
  assert.equal(res.status, 200, `disconnecting ${username}`);
}

async function registerViaForm(page, username) {
  await page.goto("/register");
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password").fill(PASSWORD);
  await Promise.all([page.waitForURL(`${base}/`), page.getByRole("button", { name: "Register" }).click()]);
  await waitLive(page);
}

async function loginViaForm(page, username) {
  await page.goto("/login");
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password").fill(PASSWORD);
  await Promise.all([page.waitForURL(`${base}/`), page.getByRole("button", { name: "Log in" }).click()]);
  await waitLive(page);
}

async function waitLive(page, timeout = WAIT) {
  await page.waitForFunction(() => document.getElementById("conn").dataset.state === "live", null, {
    timeout,
  });
}

/** On a phone, opens the rooms panel (the join form and the room list are in it). */
async function openRooms(page) {
  const toggle = page.locator("#rooms-toggle");
  if ((await toggle.isVisible()) && (await toggle.getAttribute("aria-expanded")) !== "true") {
    await toggle.click();
  }
}

async function joinRoom(page, room) {
  await openRooms(page);
  await page.getByLabel("Join a room").fill(room);
  await page.getByLabel("Join a room").press("Enter");
  await page
    .locator(`#room-list button.room-open[aria-current="true"]`, { hasText: `#${room}` })
    .waitFor({ state: "attached" });
  // The page subscribed: the server shows us in the room's presence.
  await page.locator("#presence li.self").waitFor({ state: "attached" });
}

/** Types into the composer and presses Enter. */
async function say(page, text) {
  const box = page.locator("#composer-input");
  await box.fill(text);
  await box.press("Enter");
  await page.locator("#messages li.msg[data-id] .msg-body").filter({ hasText: text }).last().waitFor();
}

/** Sends `text` as typed, then waits for the message that shows `shown` (its formatted text). */
async function sayRaw(page, text, shown) {
  const box = page.locator("#composer-input");
  await box.fill(text);
  await box.press("Enter");
  await page.locator("#messages li.msg[data-id] .msg-body").filter({ hasText: shown }).last().waitFor();
}

/** [{id, user, body}] of the messages on screen, in DOM order. */
function shownMessages(page) {
  return page.$$eval("#messages li.msg[data-id]", (lis) =>
    lis.map((li) => ({
      id: Number(li.dataset.id),
      user: li.querySelector(".msg-user").textContent,
      body: li.querySelector(".msg-body").textContent,
    })),
  );
}

function presenceNames(page) {
  return page.$$eval("#presence li", (lis) => lis.map((li) => li.firstChild.textContent));
}

async function waitPresence(page, names) {
  await page.waitForFunction(
    (want) => {
      const got = [...document.querySelectorAll("#presence li")].map((li) => li.firstChild.textContent);
      return want.every((n) => got.includes(n));
    },
    names,
    { timeout: WAIT },
  );
}

/** Posts `b{from}`..`b{to}` to `room` through the API from `page`, `gapMs` apart. */
function postMany(page, room, from, to, gapMs) {
  return page.evaluate(
    async ({ room, from, to, gapMs }) => {
      for (let i = from; i <= to; i++) {
        const res = await fetch(`/api/rooms/${room}/messages`, {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ body: `b${i}` }),
        });
        if (res.status !== 201) throw new Error(`post ${i}: ${res.status}`);
        if (gapMs) await new Promise((r) => setTimeout(r, gapMs));
      }
    },
    { room, from, to, gapMs },
  );
}

/** Scrolls the room up until the message `body` is shown. */
async function scrollToStart(page, body) {
  const first = page.locator("#messages .msg-body", { hasText: new RegExp(`^${body}$`) });
  for (let i = 0; i < 10; i++) {
    await page.locator("#scroller").evaluate((el) => {
      el.scrollTop = 0;
      el.dispatchEvent(new Event("scroll"));
    });
    if ((await first.count()) > 0) break;
    await new Promise((r) => setTimeout(r, 300));
  }
  await first.waitFor();
}

/** What has the keyboard focus, e.g. `TEXTAREA#composer-input`, for failure messages. */
function focused(page) {
  return page.evaluate(() => {
    const el = document.activeElement;
    if (!el || el === document.body) return "BODY";
    const label = el.id ? `#${el.id}` : el.className ? `.${String(el.className).split(" ").join(".")}` : "";
    return `${el.tagName}${label}`;
  });
}

/** Presses Tab until the element with id `target` has the focus; the stops on the way. */
async function tabTo(page, target, maxPresses = 30) {
  const path = [];
  for (let i = 0; i < maxPresses; i++) {
    await page.keyboard.press("Tab");
    const now = await focused(page);
    path.push(now);
    if (await page.evaluate((id) => document.activeElement?.id === id, target)) return path;
  }
  assert.fail(`#${target} not reached in ${maxPresses} Tab presses; focus went ${path.join(" → ")}`);
}

function assertAscendingUnique(msgs, what) {
  const ids = msgs.map((m) => m.id);
  assert.equal(new Set(ids).size, ids.length, `${what}: duplicate message ids ${ids}`);
  for (let i = 1; i < ids.length; i++) assert.ok(ids[i - 1] < ids[i], `${what}: ids out of order ${ids}`);
}

// ---------------------------------------------------------------------------------------
// Tests. Each one makes its own users (new names) and rooms, so one failing leaves the
// others as they were; only the last one looks back at all of them (script errors, CSP).

step("logged-out visitors of / land on /login; bad form input shows errors by the field", async (t) => {
  const { page } = await newUserPage(t, DESKTOP);
  await page.goto("/");
  assert.equal(page.url(), `${base}/login`);
  assert.equal(await page.getByRole("heading", { name: "Log in" }).count(), 1);

  await page.getByLabel("Username").fill("nobody_here");
  await page.getByLabel("Password").fill("wrong password");
  await page.getByRole("button", { name: "Log in" }).click();
  await page.locator("#password-error").waitFor();
  assert.match(await page.locator("#password-error").textContent(), /invalid username or password/);
  assert.equal(await page.getByLabel("Username").inputValue(), "nobody_here", "the username is kept");

  await page.goto("/register");
  await page.getByLabel("Username").fill("x");
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Register" }).click();
  await page.locator("#username-error").waitFor();
  assert.equal(await page.getByLabel("Username").getAttribute("aria-invalid"), "true");
});

step("two users register, join a room, chat, see presence and typing", async (t) => {
  const room = unique("chat-");
  const alice = { ...(await newUserPage(t, DESKTOP)), name: unique("alice") };
  const bob = { ...(await newUserPage(t, PHONE)), name: unique("bob") };
  await registerViaForm(alice.page, alice.name);
  await registerViaForm(bob.page, bob.name);

  await joinRoom(alice.page, room);
  await joinRoom(bob.page, room);
  await waitPresence(alice.page, [alice.name, bob.name]);
  await waitPresence(bob.page, [alice.name, bob.name]);

  // Typing shows on the other side, then goes away on its own.
  await alice.page.locator("#composer-input").pressSequentially("hel", { delay: 30 });
  await bob.page.locator("#typing", { hasText: `${alice.name} is typing…` }).waitFor();
  await bob.page.waitForFunction(() => document.getElementById("typing").textContent === "", null, {
    timeout: 8000,
  });

  await say(alice.page, "hello bob");
  await bob.page.locator("#messages .msg-body", { hasText: "hello bob" }).waitFor();
  await say(bob.page, "hi alice");
  await alice.page.locator("#messages .msg-body", { hasText: "hi alice" }).waitFor();

  // Shift+Enter is a new line; Enter sends.
  const box = bob.page.locator("#composer-input");
  await box.fill("");
  await box.pressSequentially("line one");
  await box.press("Shift+Enter");
  await box.pressSequentially("line two");
  await box.press("Enter");
  await alice.page.locator("#messages .msg-body", { hasText: "line two" }).waitFor();
  const last = (await shownMessages(alice.page)).at(-1);
  assert.equal(last.body, "line one\nline two");
  assert.equal(last.user, bob.name);

  for (const p of [alice.page, bob.page]) assertAscendingUnique(await shownMessages(p), "chat");
});

step("a <script> body shows as text and does not run", async (t) => {
  const { alice, bob } = await newPair(t, "xss-");
  const evil = `<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"><b>bold</b>`;
  await say(alice.page, evil);
  const body = bob.page.locator("#messages .msg-body").filter({ hasText: "window.__pwned = 1" });
  await body.waitFor();
  assert.equal(await body.textContent(), evil);
  assert.equal(await bob.page.locator("#messages script, #messages img, #messages b").count(), 0);
  assert.equal(await bob.page.evaluate(() => window.__pwned), undefined);
  assert.equal(await alice.page.evaluate(() => window.__pwned), undefined);

  // Quoted in a reply, and mentioning someone: text still.
  await bob.page.locator("#messages li.msg", { hasText: "window.__pwned = 1" }).getByRole("button", { name: /^Reply to/ }).click();
  await say(bob.page, `<img src=x onerror="window.__pwned = 3"> @${alice.name}`);
  const quote = alice.page.locator("#messages .msg-quote .quote-text").last();
  await quote.waitFor();
  assert.equal(await quote.textContent(), [...evil].slice(0, 100).join(""));
  for (const p of [alice.page, bob.page]) {
    assert.equal(await p.locator("#messages script, #messages img, #messages b").count(), 0);
    assert.equal(await p.evaluate(() => window.__pwned), undefined);
  }
});

step("offline and back: every missed message shows exactly once, in order", async (t) => {
  const { alice, bob } = await newPair(t, "offline-");
  await say(alice.page, "before bob went away");
  await bob.page.locator("#messages .msg-body", { hasText: "before bob went away" }).waitFor();
  const before = await shownMessages(bob.page);
  const streamsBefore = await bob.page.evaluate(() => window.roomcast.streamsOpened);
  await bob.context.setOffline(true);
  // Cut the stream from the server side too, so the test does not depend on how the
  // browser treats an open stream when the network goes away.
  await disconnect(bob.name);
  await bob.page.waitForFunction(() => document.getElementById("conn").dataset.state === "reconnecting");
  // Alice sees bob leave.
  await alice.page.waitForFunction(
    (name) => ![...document.querySelectorAll("#presence li")].some((li) => li.firstChild.textContent === name),
    bob.name,
  );

  const missed = [];
  for (let i = 1; i <= 6; i++) {
    const text = `missed ${i} while bob was away`;
    await say(alice.page, text);
    missed.push(text);
  }
  // A little time offline, so the browser's reconnect attempts fail at least once.
  await new Promise((r) => setTimeout(r, 1500));
  assert.deepEqual(await shownMessages(bob.page), before, "nothing arrives while offline");

  await bob.context.setOffline(false);
  await waitLive(bob.page, 20_000);
  await bob.page
    .locator("#messages .msg-body", { hasText: missed.at(-1) })
    .waitFor({ timeout: 20_000 });
  // Give any duplicate a chance to show up before checking.
  await new Promise((r) => setTimeout(r, 1000));

  const after = await shownMessages(bob.page);
  assertAscendingUnique(after, "after resume");
  const bodies = after.map((m) => m.body);
  for (const text of missed) {
    assert.equal(bodies.filter((b) => b === text).length, 1, `"${text}" shown once`);
  }
  assert.deepEqual(
    bodies.filter((b) => b.startsWith("missed ")),
    missed,
    "the missed messages, in order",
  );
  assert.deepEqual(
    bodies,
    [...before.map((m) => m.body), ...missed],
    "exactly what was there plus what was missed",
  );
  await waitPresence(alice.page, [alice.name, bob.name]);
  const { streamsOpened, resumedBy } = await bob.page.evaluate(() => ({
    streamsOpened: window.roomcast.streamsOpened,
    resumedBy: window.roomcast.resumedBy,
  }));
  t.diagnostic(
    streamsOpened === streamsBefore
      ? `the browser reconnected its EventSource; resume asked by ${resumedBy === "header" ? "Last-Event-ID" : "last_event_id"}`
      : `the page opened ${streamsOpened - streamsBefore} new EventSource(s); resume by ${resumedBy}`,
  );
});

step("a stream the browser gives up on is reopened by the page and resumes by id", async (t) => {
  const { alice, bob } = await newPair(t, "refused-");
  // Bob reads one message off the stream: there is an id to resume from.
  await say(alice.page, "before the stream was refused");
  await bob.page.locator("#messages .msg-body", { hasText: "before the stream was refused" }).waitFor();
  await bob.page.waitForFunction(() => window.roomcast.lastSeenId > 0);
  const before = await shownMessages(bob.page);
  const streamsBefore = await bob.page.evaluate(() => window.roomcast.streamsOpened);
  // Every new stream now gets a 503: the browser's EventSource fails for good (CLOSED).
  const refused = [];
  await bob.page.route(/\/api\/events(\?|$)/, (route) => {
    refused.push(route.request().url());
    return route.fulfill({ status: 503, contentType: "text/plain", body: "down for a moment" });
  });
  await disconnect(bob.name);
  await bob.page.waitForFunction(() => document.getElementById("conn").dataset.state === "reconnecting");
  const missed = [];
  for (let i = 1; i <= 3; i++) {
    const text = `while the stream was refused ${i}`;
    await say(alice.page, text);
    missed.push(text);
  }
  // The page notices the EventSource is closed and makes a new one, in one step, refused …
  const deadline = Date.now() + 20_000;
  while (!refused.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.ok(refused.length, "the page reopened its stream within 20 s");
  assert.match(refused[0], /[?&]rooms=/, "the first reopening is the one-step form");
  // … then the server is back.
  await bob.page.unroute(/\/api\/events(\?|$)/);
  await waitLive(bob.page, 20_000);
  await bob.page.locator("#messages .msg-body", { hasText: missed.at(-1) }).waitFor({ timeout: 20_000 });
  await new Promise((r) => setTimeout(r, 1000));
  const after = await shownMessages(bob.page);
  assertAscendingUnique(after, "after reopening");
  assert.deepEqual(
    after.map((m) => m.body),
    [...before.map((m) => m.body), ...missed],
  );
  const resumedBy = await bob.page.evaluate(() => window.roomcast.resumedBy);
  // The one-step opens were refused, so the page reopened in two steps.
  assert.equal(resumedBy, "body", "a new EventSource resumes with last_event_id in its subscribe");
  t.diagnostic(`streams opened by the page: ${(await bob.page.evaluate(() => window.roomcast.streamsOpened)) - streamsBefore}`);
});

step("a dropped stream reopens subscribed in one step and resumes by id", async (t) => {
  const { alice, bob } = await newPair(t, "onestep-");
  await say(alice.page, "before the drop");
  await bob.page.locator("#messages .msg-body", { hasText: "before the drop" }).waitFor();
  const before = await shownMessages(bob.page);
  await disconnect(bob.name);
  await bob.page.waitForFunction(() => document.getElementById("conn").dataset.state === "reconnecting");
  const missed = ["dropped 1", "dropped 2"];
  for (const text of missed) await say(alice.page, text);
  await waitLive(bob.page, 20_000);
  await bob.page.locator("#messages .msg-body", { hasText: missed.at(-1) }).waitFor({ timeout: 20_000 });
  await new Promise((r) => setTimeout(r, 500));
  const after = await shownMessages(bob.page);
  assertAscendingUnique(after, "after the drop");
  assert.deepEqual(
    after.map((m) => m.body),
    [...before.map((m) => m.body), ...missed],
  );
  assert.equal(await bob.page.evaluate(() => window.roomcast.resumedBy), "query", "resumed by the URL's last_event_id");
});

step("joined rooms survive a reload", async (t) => {
  const room = unique("reload-");
  const { page } = await newUser(t, "erin");
  await joinRoom(page, room);
  await say(page, "before the reload");
  await page.reload();
  await waitLive(page);
  await page.locator(`#room-list button.room-open[aria-current="true"]`, { hasText: `#${room}` }).waitFor();
  await page.getByRole("button", { name: "#general", exact: true }).waitFor();
  await page.locator("#messages .msg-body", { hasText: "before the reload" }).waitFor();
  assertAscendingUnique(await shownMessages(page), "after reload");
});

step("a reload right after a join keeps the room, before the server heard of it", async (t) => {
  const [first, quick] = [unique("saved-"), unique("quick-")];
  const { page } = await newUser(t, "fay");
  // The server has a list of fay's rooms (with `first`)…
  const saved = page.waitForResponse(
    (r) => r.url().endsWith(`/api/me/rooms/${first}`) && r.request().method() === "PUT" && r.ok(),
  );
  await joinRoom(page, first);
  await saved;
  // …and the save after the next join is held back, so the reload certainly comes first.
  await page.route("**/api/me/rooms/*", (route) =>
    route.request().method() === "PUT" ? route.abort() : route.continue(),
  );
  await joinRoom(page, quick);
  await page.reload();
  await waitLive(page);
  await page.locator(`#room-list button.room-open`, { hasText: `#${quick}` }).waitFor({ timeout: 5_000 });
});

step("earlier history loads when scrolling up", async (t) => {
  const room = unique("history-");
  const alice = await newUser(t, "alice", DESKTOP);
  const bob = await newUser(t, "bob", PHONE);
  await joinRoom(alice.page, room);
  // 70 messages through the API, from alice's page (same origin, her session).
  await postMany(alice.page, room, 1, 70, 0);
  await alice.page.locator("#messages .msg-body", { hasText: /^b70$/ }).waitFor();

  // Bob joins: he gets the latest page, then the rest on scrolling up.
  await joinRoom(bob.page, room);
  await bob.page.locator("#messages .msg-body", { hasText: /^b70$/ }).waitFor();
  const first = await shownMessages(bob.page);
  assert.ok(first.length >= 50 && first.length < 70, `a first page, got ${first.length}`);
  await scrollToStart(bob.page, "b1");
  const all = await shownMessages(bob.page);
  assertAscendingUnique(all, "history");
  assert.deepEqual(
    all.map((m) => m.body),
    Array.from({ length: 70 }, (_, i) => `b${i + 1}`),
  );
  await bob.page.locator("#history-start").waitFor();

  // Leaving the room takes it off the list and off the screen.
  await openRooms(bob.page);
  await bob.page.getByRole("button", { name: `Leave #${room}` }).click();
  await bob.page.waitForFunction((room) => window.roomcast.current !== room, room);
  assert.equal(await bob.page.getByRole("button", { name: `Leave #${room}` }).count(), 0);
});

step("joining a busy room while someone posts: every message shows once, in order", async (t) => {
  const room = unique("busy-");
  const alice = await newUser(t, "alice", DESKTOP);
  const bob = await newUser(t, "bob", PHONE);
  await joinRoom(alice.page, room);
  await postMany(alice.page, room, 1, 60, 0);
  // Bob's subscribes take a while on the wire: whatever is posted meanwhile must still
  // reach him, on the stream or in the history page he reads after subscribing.
  await bob.page.route("**/api/subscribe", async (route) => {
    await new Promise((r) => setTimeout(r, 400));
    await route.continue();
  });
  const posting = postMany(alice.page, room, 61, 100, 15);
  await joinRoom(bob.page, room);
  await posting;
  await bob.page.unroute("**/api/subscribe");
  await bob.page.locator("#messages .msg-body", { hasText: /^b100$/ }).waitFor();
  await new Promise((r) => setTimeout(r, 500));
  const all = Array.from({ length: 100 }, (_, i) => `b${i + 1}`);
  const shown = await shownMessages(bob.page);
  assertAscendingUnique(shown, "busy room");
  assert.deepEqual(
    shown.map((m) => m.body),
    all.slice(all.length - shown.length),
    "the newest messages without a hole",
  );
  await scrollToStart(bob.page, "b1");
  const full = await shownMessages(bob.page);
  assertAscendingUnique(full, "busy room, all of it");
  assert.deepEqual(
    full.map((m) => m.body),
    all,
  );
});

step("leaving a room while its subscribe is on the way leaves no subscription behind", async (t) => {
  const { alice, bob, room } = await newPair(t, "stay-");
  const ghost = unique("ghost-");
  await bob.page.route("**/api/subscribe", async (route) => {
    await new Promise((r) => setTimeout(r, 500));
    await route.continue();
  });
  await openRooms(bob.page);
  await bob.page.getByLabel("Join a room").fill(ghost);
  await bob.page.getByLabel("Join a room").press("Enter");
  await openRooms(bob.page);
  await bob.page.getByRole("button", { name: `Leave #${ghost}` }).click();
  await new Promise((r) => setTimeout(r, 1500));
  await bob.page.unroute("**/api/subscribe");
  const presence = await alice.page.evaluate(async (room) => {
    const res = await fetch(`/api/rooms/${room}/presence`);
    return (await res.json()).users.map((u) => u.username);
  }, ghost);
  assert.ok(!presence.includes(bob.name), `${bob.name} is not in #${ghost}: ${presence}`);
  // Bob still gets his room's messages: the stream is fine.
  await openRooms(bob.page);
  await bob.page.getByRole("button", { name: `#${room}`, exact: true }).click();
  await say(alice.page, "after the ghost");
  await bob.page.locator("#messages .msg-body", { hasText: "after the ghost" }).waitFor();
});

step("at most 100 rooms: a longer saved list is cut, the 101st join is refused", async (t) => {
  const carol = await newUser(t, "carol");
  const prefix = unique("many");
  const names = Array.from({ length: 150 }, (_, i) => `${prefix}-${String(i).padStart(3, "0")}`);
  // The saved list comes from the server; this one is longer than any server keeps.
  const listed = names.map((name) => ({
    name, visibility: "public", role: null, last_read_id: 0, last_message_id: 0, unread: 0, mentions: 0,
  }));
  await carol.page.route("**/api/me/rooms", (route) =>
    route.request().method() === "GET"
      ? route.fulfill({ contentType: "application/json", body: JSON.stringify({ rooms: listed }) })
      : route.continue(),
  );
  await carol.page.reload();
  await waitLive(carol.page);
  // Stays live on its one stream (no refused subscribe, no reconnect loop).
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(await carol.page.evaluate(() => document.getElementById("conn").dataset.state), "live");
  assert.equal(await carol.page.evaluate(() => window.roomcast.streamsOpened), 1);
  assert.equal(await carol.page.locator("#room-list li").count(), 100);
  const presence = await carol.page.evaluate(async (room) => {
    const res = await fetch(`/api/rooms/${room}/presence`);
    return (await res.json()).users.map((u) => u.username);
  }, names[99]);
  assert.deepEqual(presence, [carol.name], "subscribed to the 100th room");

  const before = await carol.page.evaluate(() => window.roomcast.current);
  const extra = unique("one-too-many-");
  await carol.page.getByLabel("Join a room").fill(extra);
  await carol.page.getByLabel("Join a room").press("Enter");
  await carol.page.locator("#join-error", { hasText: /at most 100 rooms/ }).waitFor();
  assert.equal(await carol.page.locator("#room-list li").count(), 100);
  assert.equal(await carol.page.evaluate(() => window.roomcast.current), before);
  assert.equal(await carol.page.getByLabel("Join a room").inputValue(), extra, "the name is kept");

  // Leaving one makes room for it.
  await carol.page.getByRole("button", { name: `Leave #${names[0]}` }).click();
  assert.equal(await carol.page.locator("#join-error").textContent(), "");
  await joinRoom(carol.page, extra);
  assert.equal(await carol.page.locator("#room-list li").count(), 100);
});

step("a first room joined after a reconnect is subscribed and shows its messages", async (t) => {
  const room = unique("rejoin-");
  const alice = await newUser(t, "alice");
  await joinRoom(alice.page, room);
  const dave = await newUser(t, "dave");
  // Dave sees one event (his own message), then leaves every room.
  await say(dave.page, "dave was here");
  await dave.page.waitForFunction(() => window.roomcast.lastSeenId > 0);
  await dave.page.getByRole("button", { name: "Leave #general" }).click();
  await dave.page.locator("#room-list li").first().waitFor({ state: "detached" });

  await disconnect(dave.name);
  await dave.page.waitForFunction(() => document.getElementById("conn").dataset.state === "reconnecting");
  await say(alice.page, "while dave had no room");
  await waitLive(dave.page, 20_000);

  await joinRoom(dave.page, room);
  await dave.page.locator("#messages .msg-body", { hasText: "while dave had no room" }).waitFor();
  await say(alice.page, "hello dave");
  await dave.page.locator("#messages .msg-body", { hasText: "hello dave" }).waitFor();
  await new Promise((r) => setTimeout(r, 500));
  const shown = await shownMessages(dave.page);
  assertAscendingUnique(shown, "dave");
  const alices = await shownMessages(alice.page);
  assert.deepEqual(
    shown.map((m) => m.id),
    alices.slice(alices.length - shown.length).map((m) => m.id),
    "the room's newest messages, as alice sees them",
  );
  // The stream reopened with no room to name, so the first join's subscribe resumes.
  assert.equal(await dave.page.evaluate(() => window.roomcast.resumedBy), "body");
});

step("an admin broadcasts; everyone sees the banner", async (t) => {
  const { alice, bob } = await newPair(t, "banner-");
  const admin = await newUserPage(t, DESKTOP);
  await loginViaForm(admin.page, ADMIN);
  assert.equal(await alice.page.locator("#broadcast-form").count(), 0, "no broadcast box for users");
  assert.equal(await alice.page.locator("#admin-open").count(), 0, "no admin panel for users");
  const text = `Maintenance at 18:00 <b>UTC</b> (${unique("notice")})`;
  await admin.page.getByRole("button", { name: "Admin" }).click();
  await admin.page.getByLabel("Broadcast message").fill(text);
  await admin.page.getByRole("button", { name: "Send broadcast" }).click();
  for (const p of [alice.page, bob.page, admin.page]) {
    await p.locator("#banner-text", { hasText: text }).waitFor();
    assert.equal(await p.locator("#banner").isVisible(), true);
  }
  // Dismissing it puts the focus back in the message box, not on <body>.
  await alice.page.getByRole("button", { name: "Dismiss broadcast" }).click();
  assert.equal(await alice.page.locator("#banner").isVisible(), false);
  assert.equal(await focused(alice.page), "TEXTAREA#composer-input", "focus after dismissing the banner");
});

step("screenshots of the chat at desktop and phone width", async (t) => {
  const { alice, bob } = await newPair(t, "lounge-");
  await say(bob.page, "Morning! Anyone up for lunch at noon?");
  await say(alice.page, "Screenshot time: this is how the chat looks on a desktop.");
  await bob.page.locator("#messages .msg-body", { hasText: "Screenshot time" }).waitFor();
  await alice.page.locator("#composer-input").pressSequentially("typing", { delay: 20 });
  await bob.page.locator("#typing", { hasText: `${alice.name} is typing…` }).waitFor();
  await alice.page.screenshot({ path: join(SHOTS, "chat-desktop-1280x800.png") });
  await bob.page.screenshot({ path: join(SHOTS, "chat-phone-360x740.png") });

  // Nothing on the phone is wider than the screen.
  const overflow = await bob.page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(overflow <= PHONE.width, `page is ${overflow}px wide on a ${PHONE.width}px phone`);

  const login = await newUserPage(t, PHONE);
  await login.page.goto("/login");
  await login.page.screenshot({ path: join(SHOTS, "login-phone-360x740.png") });
});

step("keyboard: a focused control shows an outline", async (t) => {
  const { page } = await newUser(t, "frank");
  await page.locator("#join-name").focus();
  await page.keyboard.press("Tab"); // the Join button
  const outline = await page.evaluate(() => {
    const el = document.activeElement;
    return { tag: el.tagName, style: getComputedStyle(el).outlineStyle };
  });
  assert.equal(outline.tag, "BUTTON");
  assert.notEqual(outline.style, "none", "focused control has an outline");
});

step("keyboard only: Tab reaches the message box and Send, and Enter sends", async (t) => {
  const room = unique("keys-");
  const { page } = await newUser(t, "grace");
  await joinRoom(page, room);
  // Start over from the top of a fresh page: no focus anywhere.
  await page.reload();
  await waitLive(page);
  const path = await tabTo(page, "composer-input");
  t.diagnostic(`Tab stops to the message box: ${path.join(" → ")}`);

  // Enter in the message box sends.
  await page.keyboard.type("sent with Enter");
  await page.keyboard.press("Enter");
  await page.locator("#messages .msg-body", { hasText: "sent with Enter" }).waitFor();
  assert.equal(await page.locator("#composer-input").inputValue(), "", "the box is empty after sending");
  assert.equal(await focused(page), "TEXTAREA#composer-input", "focus stays in the message box");

  // The next Tab stop is Send, visibly focused; Enter on it sends.
  await page.keyboard.type("sent with the Send button");
  await page.keyboard.press("Tab");
  assert.equal(await focused(page), "BUTTON#send", "Tab from the message box goes to Send");
  const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  assert.notEqual(outline, "none", "the focused Send button has an outline");
  await page.keyboard.press("Enter");
  await page.locator("#messages .msg-body", { hasText: "sent with the Send button" }).waitFor();
  assert.deepEqual(
    (await shownMessages(page)).map((m) => m.body),
    ["sent with Enter", "sent with the Send button"],
  );
});

step("log out goes to /login and / is closed again", async (t) => {
  const { page } = await newUser(t, "heidi");
  await page.getByRole("button", { name: "Log out" }).click();
  await page.waitForURL(`${base}/login`);
  await page.goto("/");
  assert.equal(page.url(), `${base}/login`);
});

step("the app's modules are served as JavaScript and revalidated on every load", async (t) => {
  const { context, page } = await newUserPage(t, DESKTOP);
  const modules = [];
  page.on("response", (res) => {
    if (new URL(res.url()).pathname.startsWith("/static/js/")) modules.push(res);
  });
  await register(context, "ivan");
  await page.goto("/");
  await waitLive(page);
  assert.ok(modules.length >= 5, `the entry imports its modules: ${modules.map((r) => r.url())}`);
  for (const res of modules) {
    const headers = await res.allHeaders();
    assert.equal(res.status(), 200, res.url());
    assert.match(headers["content-type"], /javascript/, `${res.url()}: type`);
    // The entry's URL changes with its contents (`?v=`); the modules' do not.
    assert.equal(headers["cache-control"], "no-cache", `${res.url()}: cache-control`);
  }
});

// ---------------------------------------------------------------------------------------
// Private rooms, members and moderation (issue 12), and the fixes of the browser audit.

/** Opens "Create a room" on `page` and creates `room` (public or private). */
async function createRoom(page, room, visibility) {
  await page.getByText("Create a room").click();
  await page.getByLabel("New room name").fill(room);
  await page.getByLabel(visibility === "private" ? "Private: members only" : "Public: anyone").check();
  await page.getByRole("button", { name: "Create room" }).click();
  await page.locator(`#room-list button.room-open[aria-current="true"]`, { hasText: `#${room}` }).waitFor();
  await page.locator("#presence li.self").waitFor();
}

/** Answers the open confirmation dialog with its `ok` button (e.g. "Delete"). */
async function confirm(page, ok) {
  const dialog = page.locator("#confirm");
  await dialog.waitFor();
  await dialog.getByRole("button", { name: ok, exact: true }).click();
  await dialog.waitFor({ state: "hidden" });
}

/** The text of the message `body` on `page` is gone, whatever else is there. */
async function waitGone(page, body, who) {
  await page
    .locator("#messages .msg-body", { hasText: body })
    .waitFor({ state: "detached" })
    .catch(() => assert.fail(`"${body}" is still shown in ${who}'s window`));
}

step("a private room: owner adds a member, they chat, a stranger cannot find or open it", async (t) => {
  const room = unique("secret-");
  const alice = await newUser(t, "alice", DESKTOP);
  const bob = await newUser(t, "bob", PHONE);
  const carol = await newUser(t, "carol", DESKTOP);

  await createRoom(alice.page, room, "private");
  const mineA = alice.page.locator("#my-rooms button", { hasText: `#${room}` });
  await mineA.filter({ hasText: "private, owner" }).waitFor();
  await alice.page.locator("#members li", { hasText: alice.name }).filter({ hasText: "owner" }).waitFor();

  await alice.page.getByLabel("Add a member").fill(bob.name);
  await alice.page.getByRole("button", { name: "Add", exact: true }).click();
  await alice.page.locator("#members li", { hasText: bob.name }).filter({ hasText: "member" }).waitFor();
  assert.equal(await alice.page.locator("#member-error").textContent(), "", "adding bob raised no error");

  // Bob finds it under "My rooms" (read again on a reload) and opens it from there.
  await bob.page.reload();
  await waitLive(bob.page);
  const mine = bob.page.locator("#my-rooms button", { hasText: `#${room}` });
  await openRooms(bob.page);
  await mine.filter({ hasText: "private, member" }).waitFor();
  await mine.click();
  await bob.page
    .locator(`#room-list button.room-open[aria-current="true"]`, { hasText: `#${room}` })
    .waitFor({ state: "attached" });
  await waitPresence(alice.page, [alice.name, bob.name]);

  await say(alice.page, "only for members");
  await bob.page.locator("#messages .msg-body", { hasText: "only for members" }).waitFor();
  await say(bob.page, "got it");
  await alice.page.locator("#messages .msg-body", { hasText: "got it" }).waitFor();

  // Carol: not in the listing, and joining by name is refused with a word why.
  const listing = await pageApi(carol.page, "GET", "/api/rooms?limit=500");
  assert.equal(listing.status, 200);
  assert.ok(!listing.body.rooms.some((r) => r.name === room), `#${room} is listed for a stranger`);
  await carol.page.getByLabel("Join a room").fill(room);
  await carol.page.getByLabel("Join a room").press("Enter");
  await carol.page.locator("#join-error", { hasText: /no such room you may open/ }).waitFor();
  assert.equal(await carol.page.locator("#room-list button.room-open", { hasText: `#${room}` }).count(), 0);
  assert.equal(await carol.page.locator("#messages .msg-body", { hasText: "only for members" }).count(), 0);
  await waitLive(carol.page);
  const seen = await pageApi(carol.page, "GET", `/api/rooms/${room}/messages`);
  assert.equal(seen.status, 404, "a stranger reads no history of a private room");
  await alice.page.screenshot({ path: join(SHOTS, "private-room-desktop-1280x800.png") });
});

step("the author deletes a message: it vanishes in every window, and stays gone after a reload", async (t) => {
  const room = unique("tidy-");
  const alice = await newUser(t, "alice", DESKTOP);
  const bob = await newUser(t, "bob", PHONE);
  await createRoom(alice.page, room, "private");
  await alice.page.getByLabel("Add a member").fill(bob.name);
  await alice.page.getByRole("button", { name: "Add", exact: true }).click();
  await alice.page.locator("#members li", { hasText: bob.name }).waitFor();
  await joinRoom(bob.page, room);

  await say(bob.page, "oops, wrong room");
  await say(bob.page, "this one stays");
  await alice.page.locator("#messages .msg-body", { hasText: "this one stays" }).waitFor();
  // Alice (the owner) sees a delete button on bob's message; bob deletes it himself.
  assert.equal(
    await alice.page.getByRole("button", { name: `Delete message from ${bob.name}` }).count(),
    2,
    "the owner may delete anyone's messages",
  );
  await bob.page
    .locator("#messages li.msg", { hasText: "oops, wrong room" })
    .getByRole("button", { name: `Delete message from ${bob.name}` })
    .click();
  await confirm(bob.page, "Delete");
  await waitGone(bob.page, "oops, wrong room", "bob");
  await waitGone(alice.page, "oops, wrong room", "alice");
  assert.deepEqual(
    (await shownMessages(alice.page)).map((m) => m.body),
    ["this one stays"],
    "only the deleted message went",
  );
  await alice.page.reload();
  await waitLive(alice.page);
  await alice.page.locator("#messages .msg-body", { hasText: "this one stays" }).waitFor();
  const oops = alice.page.locator("#messages .msg-body", { hasText: "oops" });
  assert.equal(await oops.count(), 0, "the deleted message is gone after a reload");
});

step("a window that was away when a message was deleted drops it on resume", async (t) => {
  const { alice, bob, room } = await newPair(t, "resume-del-");
  await say(alice.page, "soon deleted");
  await bob.page.locator("#messages .msg-body", { hasText: "soon deleted" }).waitFor();
  await bob.context.setOffline(true);
  await disconnect(bob.name);
  await bob.page.waitForFunction(() => document.getElementById("conn").dataset.state === "reconnecting");
  await alice.page
    .locator("#messages li.msg", { hasText: "soon deleted" })
    .getByRole("button", { name: /^Delete message/ })
    .click();
  await confirm(alice.page, "Delete");
  await waitGone(alice.page, "soon deleted", "alice");
  await say(alice.page, `after the delete in #${room}`);
  await bob.context.setOffline(false);
  await waitLive(bob.page, 20_000);
  await bob.page.locator("#messages .msg-body", { hasText: "after the delete" }).waitFor({ timeout: 20_000 });
  await waitGone(bob.page, "soon deleted", "bob (resumed)");
});

step("the owner removes a member: the member's window says so and the room leaves its list", async (t) => {
  const room = unique("club-");
  const alice = await newUser(t, "alice", DESKTOP);
  const bob = await newUser(t, "bob", PHONE);
  await createRoom(alice.page, room, "private");
  await alice.page.getByLabel("Add a member").fill(bob.name);
  await alice.page.getByRole("button", { name: "Add", exact: true }).click();
  await alice.page.locator("#members li", { hasText: bob.name }).waitFor();
  await joinRoom(bob.page, room);
  await say(alice.page, "welcome");
  await bob.page.locator("#messages .msg-body", { hasText: "welcome" }).waitFor();

  await alice.page.getByRole("button", { name: `Remove: ${bob.name}` }).click();
  await confirm(alice.page, "Remove");
  await alice.page.locator("#members li", { hasText: bob.name }).waitFor({ state: "detached" });
  const notice = bob.page.locator("#notice-text");
  await notice.filter({ hasText: `You were removed from #${room} by ${alice.name}` }).waitFor();
  assert.equal(await bob.page.locator("#notice").getAttribute("role"), "alert", "the notice is announced");
  await bob.page.screenshot({ path: join(SHOTS, "removed-phone-360x740.png") });
  assert.equal(await bob.page.locator("#room-list button.room-open", { hasText: `#${room}` }).count(), 0);
  assert.equal(await bob.page.locator("#my-rooms button", { hasText: `#${room}` }).count(), 0);
  // Still live, on the same stream, in his other rooms.
  await waitLive(bob.page);
  assert.equal(await bob.page.evaluate(() => window.roomcast.streamsOpened), 1);
});

step("a banned account is told so at login", async (t) => {
  const { page, name } = await newUser(t, "mallory");
  assert.equal(await adminCall("POST", `/api/admin/users/${name}/ban`), 200, "ban");
  // The open page loses its session and says why on the login page.
  await page.waitForURL(/\/login\?reason=session_ended$/, { timeout: 20_000 });
  await page.locator("#login-notice", { hasText: /session has ended/ }).waitFor();
  await page.getByLabel("Username").fill(name);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.locator("#password-error", { hasText: /banned/i }).waitFor();
  assert.equal(await adminCall("DELETE", `/api/admin/users/${name}/ban`), 204, "unban");
  await loginViaForm(page, name);
});

step("joined rooms follow the user to a new device", async (t) => {
  const room = unique("roam-");
  const { page, name } = await newUser(t, "olga");
  // The follow goes out as the room is joined: listen before joining.
  const followed = page.waitForResponse(
    (r) => r.url().endsWith(`/api/me/rooms/${room}`) && r.request().method() === "PUT",
  );
  await joinRoom(page, room);
  await followed;
  const other = await newUserPage(t, PHONE);
  await loginViaForm(other.page, name);
  await other.page.locator("#room-list button.room-open", { hasText: `#${room}` }).waitFor({ state: "attached" });
  await other.page.locator('#room-list button.room-open[data-room="general"]').waitFor({ state: "attached" });
});

step("after a reload with the room remembered, 'Load earlier messages' shows and works", async (t) => {
  const room = unique("earlier-");
  const { page } = await newUser(t, "paula");
  await joinRoom(page, room);
  await postMany(page, room, 1, 70, 0);
  await page.locator("#messages .msg-body", { hasText: /^b70$/ }).waitFor();
  // The subscribe's answer comes after its replay of the latest page has been drawn, as it
  // does on a slow link.
  await page.route("**/api/subscribe", async (route) => {
    const res = await route.fetch();
    await new Promise((r) => setTimeout(r, 500));
    await route.fulfill({ response: res });
  });
  await page.reload();
  await waitLive(page);
  await page.locator("#messages .msg-body", { hasText: /^b70$/ }).waitFor();
  await page
    .locator("#load-earlier")
    .waitFor({ state: "visible" })
    .catch(() => assert.fail("'Load earlier messages' is hidden after a reload"));
  await page.getByRole("button", { name: "Load earlier messages" }).click();
  await page.locator("#messages .msg-body", { hasText: /^b1$/ }).waitFor();
  assertAscendingUnique(await shownMessages(page), "after loading earlier");
  assert.equal((await shownMessages(page)).length, 70);
});

step("at 360 px the room title shows, and the rooms panel shows the current room", async (t) => {
  const { page } = await newUser(t, "quinn", PHONE);
  const rooms = Array.from({ length: 6 }, () => unique("a-rather-long-room-name-"));
  for (const room of rooms) await joinRoom(page, room);
  const current = rooms.at(-1);
  // A reload draws the row from its start: the current room (the last) must be scrolled in.
  await page.reload();
  await waitLive(page);
  const title = page.locator("#room-title");
  assert.equal(await title.isVisible(), true, "the room title is visible at 360 px");
  assert.equal(await title.textContent(), `#${current}`);
  await openRooms(page);
  const selector = `#room-list button.room-open[aria-current="true"]`;
  await page.locator(selector).waitFor();
  // Measured in one go from the live DOM: the list may be drawn again between two steps, which
  // detaches a handle taken earlier.
  const box = await page.evaluate((sel) => {
    const el = document.querySelector(sel);
    const r = el.getBoundingClientRect();
    const l = el.closest("ul").getBoundingClientRect();
    return { left: r.left, right: r.right, top: r.top, bottom: r.bottom, listLeft: l.left, listRight: l.right };
  }, selector);
  assert.ok(
    box.left >= box.listLeft - 1 &&
      box.right <= box.listRight + 1 &&
      box.right <= PHONE.width &&
      box.top >= 0 &&
      box.bottom <= PHONE.height,
    `the current room's entry is off screen: ${JSON.stringify(box)}`,
  );
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(overflow <= PHONE.width, `page is ${overflow}px wide on a ${PHONE.width}px phone`);
});

step("when the session ends, the login page says why", async (t) => {
  const { page, name } = await newUser(t, "rita");
  // The session ends on the server (a ban deletes it and closes the stream): the stream's
  // reconnect gets 401. Clearing the browser's cookies instead races the page's requests in
  // flight, whose answers set the cookie again.
  const res = await fetch(`${base}/api/admin/users/${name}/ban`, {
    method: "POST",
    headers: { Authorization: `Bearer ${ADMIN_TOKEN}` },
  });
  assert.equal(res.status, 200, `banning ${name}`);
  await page.waitForURL(/\/login\?reason=session_ended$/, { timeout: 20_000 });
  const notice = page.locator("#login-notice");
  await notice.waitFor();
  assert.match(await notice.textContent(), /Your session has ended/);
  // An unknown reason puts nothing on the page.
  await page.goto("/login?reason=%3Cb%3Ehi%3C%2Fb%3E");
  assert.equal(await page.locator("#login-notice").isVisible(), false, "no notice for an unknown reason");
});

step("the message log is a div with role=log around a plain list", async (t) => {
  const { page } = await newUser(t, "sam");
  await say(page, "a line for the log");
  const shape = await page.evaluate(() => {
    const li = document.querySelector("#messages li.msg");
    const list = li.parentElement;
    const log = list.closest('[role="log"]');
    return { list: list.tagName, listRole: list.getAttribute("role"), log: log && log.tagName };
  });
  assert.deepEqual(
    shape,
    { list: "OL", listRole: null, log: "DIV" },
    "each message <li> in a role-less <ol> inside <div role=log>",
  );
});

/**
 * The focused element's outline and its contrast ratio (WCAG) against the background it is
 * drawn on: the outline sits outside the element (offset), on its nearest painted ancestor.
 */
function outlineContrast(page) {
  return page.evaluate(() => {
    const rgb = (s) => (s.match(/[\d.]+/g) || []).map(Number);
    const lum = ([r, g, b]) => {
      const f = (c) => ((c /= 255) <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4);
      return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
    };
    const el = document.activeElement;
    const style = getComputedStyle(el);
    let bg = null;
    for (let p = el.parentElement; p && !bg; p = p.parentElement) {
      const c = rgb(getComputedStyle(p).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0)) bg = c;
    }
    bg = bg || [255, 255, 255];
    const a = lum(rgb(style.outlineColor));
    const b = lum(bg);
    return {
      el: `${el.tagName}#${el.id || el.className}`,
      outline: style.outlineStyle,
      color: style.outlineColor,
      bg: `rgb(${bg})`,
      ratio: (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05),
    };
  });
}

step("focus outlines have at least 3:1 contrast on their background, light and dark", async (t) => {
  for (const colorScheme of ["light", "dark"]) {
    const { context, page } = await newUserPage(t, DESKTOP, { colorScheme });
    await register(context, "tina");
    await page.goto("/");
    await waitLive(page);
    const seen = [];
    // From each start, the start and the next Tab stops: the room tabs (on the current
    // room's tint), the join form, the message box and Send.
    for (const [start, tabs] of [
      ["#room-list button.room-open", 2],
      ["#join-name", 2],
      ["#composer-input", 1],
    ]) {
      await page.locator(start).first().focus();
      for (let i = 0; i <= tabs; i++) {
        if (i > 0) await page.keyboard.press("Tab");
        const r = await outlineContrast(page);
        seen.push(r);
        assert.notEqual(r.outline, "none", `${colorScheme}: ${r.el} has no outline`);
        assert.ok(
          r.ratio >= 3,
          `${colorScheme}: outline ${r.color} on ${r.bg} of ${r.el} is ${r.ratio.toFixed(2)}:1`,
        );
      }
    }
    t.diagnostic(`${colorScheme}: ${seen.map((r) => `${r.el} ${r.ratio.toFixed(1)}:1`).join(", ")}`);
  }
});

step("a post the server does not answer waits, says so, and goes out when the stream is back", async (t) => {
  const room = unique("later-");
  const { page, name } = await newUser(t, "uma");
  await joinRoom(page, room);
  const refuse = (route) =>
    route.request().method() === "POST" ? route.abort("connectionrefused") : route.continue();
  await page.route("**/api/rooms/*/messages", refuse);
  const box = page.locator("#composer-input");
  await box.fill("sent when the server is back");
  await box.press("Enter");
  const pending = page.locator("#messages li.pending", { hasText: "sent when the server is back" });
  await pending.locator(".msg-status", { hasText: /server is unreachable.*goes out when the connection is back/ }).waitFor();
  assert.doesNotMatch(await pending.textContent(), /You are offline/, "the network is fine: not 'offline'");
  assert.equal(await box.inputValue(), "", "the box is free for the next message");
  await page.unroute("**/api/rooms/*/messages", refuse);
  // The stream drops and comes back: the waiting post goes out by itself.
  await disconnect(name);
  await page.waitForFunction(() => document.getElementById("conn").dataset.state === "reconnecting");
  await waitLive(page, 20_000);
  await page.locator("#messages li.msg[data-id] .msg-body", { hasText: "sent when the server is back" }).waitFor();
  await pending.waitFor({ state: "detached" });
  assert.equal((await shownMessages(page)).length, 1, "sent once");
});

// ---------------------------------------------------------------------------------------
// The app a person would choose: nothing typed is lost, views stay true, focus stays put,
// a phone layout for reading, long rooms stay fast.

const TALL_PHONE = { width: 390, height: 844 };
const AXE_SOURCE = readFileSync(join(here, "node_modules", "axe-core", "axe.min.js"), "utf8");

/**
 * Runs axe on what `page` shows now; fails on any serious or critical violation. `what`
 * names the state for the message.
 */
async function axeCheck(page, what) {
  // Evaluated through the browser's debugging protocol: the page's CSP does not apply.
  await page.evaluate(AXE_SOURCE);
  const violations = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ["violations"] });
    return r.violations
      .filter((v) => v.impact === "serious" || v.impact === "critical")
      .map((v) => `${v.impact} ${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(" ")).slice(0, 4).join(", ")})`);
  });
  assert.deepEqual(violations, [], `axe, ${what}`);
}

/** Bodies of the sent messages shown, in order. */
async function shownBodies(page) {
  return (await shownMessages(page)).map((m) => m.body);
}

/** The scroller's distance from the bottom (px). */
function fromBottom(page) {
  return page.locator("#scroller").evaluate((el) => el.scrollHeight - el.scrollTop - el.clientHeight);
}

/** Scrolls the messages to `top` px (as a reader would) and lets the page react. */
async function scrollTo(page, top) {
  await page.locator("#scroller").evaluate((el, top) => {
    el.scrollTop = top;
    el.dispatchEvent(new Event("scroll"));
  }, top);
}

/** A private room `room` of `owner` with `others` added as `role`. */
async function privateRoomWith(owner, room, others, role = "member") {
  assert.equal((await pageApi(owner.page, "POST", "/api/rooms", { name: room, visibility: "private" })).status, 201);
  for (const other of others) {
    const res = await pageApi(owner.page, "PUT", `/api/rooms/${room}/members/${other.name}`, { role });
    assert.equal(res.status, 200, `adding ${other.name}`);
  }
}

step("typing fast: 30 messages faster than the rate limit all arrive, in order, none lost", async (t) => {
  // A server of its own whose limit is well under the typing speed: 2 a second, burst 5, so
  // 30 messages take it 12.5 s however fast the machine types them.
  const url = await extraServer(t, {
    ROOMCAST__RATE_LIMIT__MESSAGES_PER_SEC: "2",
    ROOMCAST__RATE_LIMIT__MESSAGES_BURST: "5",
  });
  const room = unique("fast-");
  const alice = await newUser(t, "alice", DESKTOP, { baseURL: url });
  const bob = await newUser(t, "bob", DESKTOP, { baseURL: url });
  await joinRoom(alice.page, room);
  await joinRoom(bob.page, room);
  const statuses = [];
  alice.page.on("response", (r) => {
    if (r.request().method() === "POST" && /\/api\/rooms\/[^/]+\/(messages|events)$/.test(new URL(r.url()).pathname)) {
      statuses.push(`${new URL(r.url()).pathname.endsWith("/events") ? "typing" : "post"} ${r.status()}`);
    }
  });
  const box = alice.page.locator("#composer-input");
  const sent = Array.from({ length: 30 }, (_, i) => `quick ${i + 1}`);
  const started = Date.now();
  let sawWaiting = false;
  for (const [i, text] of sent.entries()) {
    // Each text lands as input (which may want a typing indicator out), then Enter.
    await box.fill(text);
    await box.press("Enter");
    if (i % 5 === 4) sawWaiting ||= (await alice.page.locator("#messages li.pending").count()) > 0;
  }
  const typedIn = Date.now() - started;
  assert.ok(typedIn < 12_500, `30 messages typed in ${typedIn} ms, no faster than the limit lets them out`);
  assert.ok(sawWaiting, "posts waited visibly ('sending…') while the limit held");
  for (const p of [alice.page, bob.page]) {
    await p.locator("#messages li.msg[data-id] .msg-body", { hasText: /^quick 30$/ }).waitFor({ timeout: 30_000 });
  }
  await alice.page.waitForFunction(() => window.roomcast.outbox === 0);
  for (const [who, p] of [["alice", alice.page], ["bob", bob.page]]) {
    assert.deepEqual(await shownBodies(p), sent, `${who} sees all 30, in order, once`);
  }
  assert.equal(await alice.page.locator("#messages li.pending").count(), 0, "nothing left waiting");
  const limited = statuses.filter((s) => s === "post 429").length;
  assert.ok(limited > 0, `the server limited some posts (${statuses.join(", ")})`);
  t.diagnostic(
    `typed 30 in ${typedIn} ms; ${limited} posts answered 429 and went out later; ` +
      `typing events sent: ${statuses.filter((s) => s.startsWith("typing")).length}`,
  );
});

step("a post refused for good comes back into the box with its error; a waiting one survives a reload", async (t) => {
  const room = unique("refused-");
  const { page } = await newUser(t, "vera");
  await joinRoom(page, room);
  const forbid = (route) =>
    route.request().method() === "POST"
      ? route.fulfill({
          status: 403,
          contentType: "application/json",
          body: JSON.stringify({ error: { code: "forbidden", message: "you may not post here" } }),
        })
      : route.continue();
  await page.route("**/api/rooms/*/messages", forbid);
  const box = page.locator("#composer-input");
  await box.fill("this one is refused");
  await box.press("Enter");
  await page.locator("#composer-error", { hasText: /you may not post here/ }).waitFor();
  assert.equal(await box.inputValue(), "this one is refused", "the text is back in the box");
  assert.equal(await box.getAttribute("aria-invalid"), "true");
  await page.unroute("**/api/rooms/*/messages", forbid);

  // A post that cannot go out yet is kept in this tab across a reload, and goes out after.
  await box.fill("");
  const hold = (route) => (route.request().method() === "POST" ? route.abort("connectionrefused") : route.continue());
  await page.route("**/api/rooms/*/messages", hold);
  await box.fill("kept across a reload");
  await box.press("Enter");
  await page.locator("#messages li.pending", { hasText: "kept across a reload" }).waitFor();
  await page.unroute("**/api/rooms/*/messages", hold);
  await page.route("**/api/rooms/*/messages", hold);
  await page.reload();
  await page.locator("#messages li.pending", { hasText: "kept across a reload" }).waitFor();
  await page.unroute("**/api/rooms/*/messages", hold);
  await page.locator("#messages li.msg[data-id] .msg-body", { hasText: "kept across a reload" }).waitFor({ timeout: 20_000 });
  assert.deepEqual(await shownBodies(page), ["kept across a reload"], "sent once");
});

step("a 4,500-character paste is refused with a word why and kept in the box; 4,000 go out whole", async (t) => {
  const room = unique("long-");
  const { page } = await newUser(t, "walt");
  await joinRoom(page, room);
  let posts = 0;
  page.on("request", (r) => {
    if (r.method() === "POST" && /\/messages$/.test(r.url())) posts++;
  });
  const box = page.locator("#composer-input");
  const long = "x".repeat(4500);
  await box.fill(long);
  await page.locator("#composer-count", { hasText: "4,500 / 4,000: 500 too many" }).waitFor();
  await box.press("Enter");
  await page.locator("#composer-error", { hasText: /4,500 characters long; the limit is 4,000.*nothing was sent/ }).waitFor();
  assert.equal((await box.inputValue()).length, 4500, "the whole text stays in the box");
  assert.equal(await box.getAttribute("aria-invalid"), "true");
  assert.equal(await focused(page), "TEXTAREA#composer-input", "the focus stays in the box");
  assert.equal(posts, 0, "nothing was posted");
  await page.screenshot({ path: join(SHOTS, "too-long-desktop-1280x800.png") });
  await axeCheck(page, "the refused long message");

  // Cut to the limit: the counter calms down and the whole text goes out.
  await box.fill("y".repeat(4000));
  await page.locator("#composer-count", { hasText: "4,000 / 4,000" }).waitFor();
  assert.equal(await page.locator("#composer-error").textContent(), "", "the refusal went with the excess");
  await box.press("Enter");
  await page.locator("#messages li.msg[data-id]").first().waitFor();
  const [msg] = await shownMessages(page);
  assert.equal(msg.body.length, 4000, "the 4,000 characters arrived whole");
  assert.equal(await page.locator("#composer-count").isVisible(), false, "no counter for an empty box");
});

step("reading older messages, new ones offer 'New messages ↓'; after a reconnect the view stays at the bottom", async (t) => {
  const room = unique("follow-");
  const alice = await newUser(t, "alice");
  const bob = await newUser(t, "bob");
  await joinRoom(alice.page, room);
  await postMany(alice.page, room, 1, 60, 0);
  await joinRoom(bob.page, room);
  await bob.page.locator("#messages .msg-body", { hasText: /^b60$/ }).waitFor();
  assert.ok((await fromBottom(bob.page)) < 5, "a room opens at its newest message");

  // Bob reads further up; alice writes.
  await scrollTo(bob.page, 200);
  await say(alice.page, "news while bob reads");
  const jump = bob.page.locator("#jump");
  await jump.filter({ hasText: "1 new message ↓" }).waitFor();
  assert.ok((await fromBottom(bob.page)) > 100, "the reader's place is kept");
  await bob.page.screenshot({ path: join(SHOTS, "new-messages-desktop-1280x800.png") });
  await jump.click();
  await jump.waitFor({ state: "hidden" });
  assert.ok((await fromBottom(bob.page)) < 5, "the view went to the newest");
  assert.equal(await focused(bob.page), "TEXTAREA#composer-input", "focus in the box after jumping");

  // At the bottom, the stream drops; what came meanwhile is replayed, and the view follows it.
  await bob.context.setOffline(true);
  await disconnect(bob.name);
  await bob.page.waitForFunction(() => document.getElementById("conn").dataset.state === "reconnecting");
  await postMany(alice.page, room, 61, 90, 0);
  await bob.context.setOffline(false);
  await waitLive(bob.page, 20_000);
  await bob.page.locator("#messages .msg-body", { hasText: /^b90$/ }).waitFor({ timeout: 20_000 });
  await bob.page.waitForFunction(() => {
    const el = document.getElementById("scroller");
    return el.scrollHeight - el.scrollTop - el.clientHeight < 5;
  });
  const lastVisible = await bob.page.evaluate(() => {
    const li = [...document.querySelectorAll("#messages li.msg[data-id]")].at(-1);
    const r = li.getBoundingClientRect();
    const s = document.getElementById("scroller").getBoundingClientRect();
    return r.bottom <= s.bottom + 1 && r.top >= s.top;
  });
  assert.ok(lastVisible, "the newest message is in view after the reconnect");
  assert.equal(await jump.isVisible(), false, "no 'New messages' at the bottom");
});

step("member changes show live: a demoted moderator's Delete buttons vanish, an added user sees the room appear", async (t) => {
  const room = unique("staff-");
  const alice = await newUser(t, "alice");
  const bob = await newUser(t, "bob");
  const carol = await newUser(t, "carol");
  await privateRoomWith(alice, room, [bob], "moderator");
  await joinRoom(alice.page, room);
  await bob.page.reload();
  await waitLive(bob.page);
  await joinRoom(bob.page, room);
  await say(alice.page, "first from alice");
  await say(alice.page, "second from alice");
  const bobDeletes = bob.page.getByRole("button", { name: `Delete message from ${alice.name}` });
  await bob.page.waitForFunction((n) => document.querySelectorAll("#messages .msg-delete").length === n, 2);
  assert.equal(await bobDeletes.count(), 2, "a moderator may delete alice's messages");

  // Alice makes bob a plain member: his buttons go at once, no reload.
  await alice.page.getByRole("button", { name: `Make member: ${bob.name}` }).click();
  await alice.page.locator(`#members li[data-username="${bob.name}"] .member-role`, { hasText: /^member$/ }).waitFor();
  await alice.page
    .waitForFunction((label) => document.activeElement.getAttribute("aria-label") === label, `Make moderator: ${bob.name}`)
    .catch(async () => assert.fail(`focus is not on bob's role button but on ${await focused(alice.page)}`));
  await bob.page.waitForFunction(() => document.querySelectorAll("#messages .msg-delete").length === 0);
  await bob.page.locator(`#members li[data-username="${bob.name}"] .member-role`, { hasText: /^member$/ }).waitFor();
  await bob.page.locator("#my-rooms button", { hasText: `#${room}` }).filter({ hasText: "member" }).waitFor();

  // Carol, open on another room, is added: the room appears in her "My rooms" at once.
  await alice.page.getByLabel("Add a member").fill(carol.name);
  await alice.page.getByRole("button", { name: "Add", exact: true }).click();
  await carol.page.locator("#my-rooms button", { hasText: `#${room}` }).waitFor();
  await carol.page.locator("#notice-text", { hasText: `You were added to #${room} by ${alice.name}` }).waitFor();
  await bob.page.locator("#members li", { hasText: carol.name }).waitFor();
  await carol.page.locator("#my-rooms button", { hasText: `#${room}` }).click();
  await carol.page.locator("#messages .msg-body", { hasText: "second from alice" }).waitFor();

  // And removed: her window says so, bob's member list drops her.
  await alice.page.getByRole("button", { name: `Remove: ${carol.name}` }).click();
  await confirm(alice.page, "Remove");
  await carol.page.locator("#notice-text", { hasText: `You were removed from #${room} by ${alice.name}` }).waitFor();
  await bob.page.locator("#members li", { hasText: carol.name }).waitFor({ state: "detached" });
});

step("the room directory lists rooms with people and their counts, searchable; joining from it", async (t) => {
  const [busy, quiet, secret] = [unique("dir-busy-"), unique("dir-quiet-"), unique("dir-secret-")];
  const alice = await newUser(t, "alice");
  const bob = await newUser(t, "bob");
  const carol = await newUser(t, "carol");
  await joinRoom(alice.page, busy);
  await joinRoom(bob.page, busy);
  await joinRoom(bob.page, quiet);
  await privateRoomWith(alice, secret, []);
  await joinRoom(alice.page, secret);

  const opener = carol.page.getByRole("button", { name: "Browse rooms" });
  await opener.click();
  const dialog = carol.page.getByRole("dialog", { name: "Find a room" });
  await dialog.waitFor();
  assert.equal(await focused(carol.page), "INPUT#directory-search", "the search box has the focus");
  await dialog.locator("li", { hasText: `#${busy}` }).filter({ hasText: "2 people here" }).waitFor();
  await dialog.locator("li", { hasText: `#${quiet}` }).filter({ hasText: "1 person here" }).waitFor();
  assert.equal(await dialog.locator("li", { hasText: `#${secret}` }).count(), 0, "a private room is not listed to strangers");
  await axeCheck(carol.page, "the room directory");
  await carol.page.screenshot({ path: join(SHOTS, "directory-desktop-1280x800.png") });

  await carol.page.getByLabel("Search rooms").fill(quiet.slice(0, -1));
  await dialog.locator("li", { hasText: `#${busy}` }).waitFor({ state: "detached" });
  await dialog.getByRole("button", { name: `Join #${quiet}` }).click();
  await dialog.waitFor({ state: "hidden" });
  await carol.page.locator(`#room-list button.room-open[aria-current="true"]`, { hasText: `#${quiet}` }).waitFor();
  await waitPresence(bob.page, [bob.name, carol.name]);
  assert.equal(await focused(carol.page), "TEXTAREA#composer-input", "focus in the box of the room joined");

  // Escape closes it and gives the focus back to the button that opened it.
  await opener.click();
  await dialog.waitFor();
  await carol.page.keyboard.press("Escape");
  await dialog.waitFor({ state: "hidden" });
  assert.equal(await focused(carol.page), "BUTTON#directory-open");
});

step("phone 390x844: messages get most of the screen, panels open over them, the view stays at the bottom", async (t) => {
  const room = unique("pocket-");
  const alice = await newUser(t, "alice");
  const bob = await newUser(t, "bob", TALL_PHONE);
  await joinRoom(alice.page, room);
  await postMany(alice.page, room, 1, 40, 0);
  await joinRoom(bob.page, room);
  await bob.page.locator("#messages .msg-body", { hasText: /^b40$/ }).waitFor();
  const share = async () =>
    bob.page.evaluate(() => document.getElementById("scroller").getBoundingClientRect().height / window.innerHeight);
  const closed = await share();
  assert.ok(closed >= 0.6, `messages get ${(closed * 100).toFixed(0)}% of the height`);
  const overflow = await bob.page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(overflow <= TALL_PHONE.width, `page is ${overflow}px wide`);
  await bob.page.screenshot({ path: join(SHOTS, "chat-phone-390x844.png") });

  // The people panel opens over the messages (they keep their height), Escape closes it.
  const people = bob.page.getByRole("button", { name: /^People/ });
  await people.click();
  await bob.page.locator("#people-panel.open").waitFor();
  assert.equal(await people.getAttribute("aria-expanded"), "true");
  assert.equal(await focused(bob.page), "BUTTON.panel-close.quiet", "focus moves into the panel");
  await waitPresence(bob.page, [alice.name, bob.name]);
  const open = await share();
  assert.ok(open >= 0.6 && Math.abs(open - closed) < 0.01, `with the panel open, messages keep ${(open * 100).toFixed(0)}%`);
  await axeCheck(bob.page, "the people panel on a phone");
  await bob.page.screenshot({ path: join(SHOTS, "people-phone-390x844.png") });
  await bob.page.keyboard.press("Escape");
  await bob.page.locator("#people-panel.open").waitFor({ state: "detached" });
  assert.equal(await focused(bob.page), "BUTTON#people-toggle", "focus back on the toggle");

  await bob.page.getByRole("button", { name: /^Rooms/ }).click();
  await bob.page.locator("#rooms-panel.open").waitFor();
  await axeCheck(bob.page, "the rooms panel on a phone");
  await bob.page.screenshot({ path: join(SHOTS, "rooms-phone-390x844.png") });
  await bob.page.keyboard.press("Escape");
  await bob.page.locator("#rooms-panel.open").waitFor({ state: "detached" });

  // An on-screen keyboard shrinks the window: the newest message stays in view.
  await bob.page.locator("#composer-input").focus();
  await bob.page.setViewportSize({ width: 390, height: 480 });
  await bob.page.waitForFunction(() => {
    const el = document.getElementById("scroller");
    return el.scrollHeight - el.scrollTop - el.clientHeight < 5;
  });
  await say(alice.page, "while bob's keyboard is up");
  await bob.page.locator("#messages .msg-body", { hasText: "while bob's keyboard is up" }).waitFor();
  await bob.page.waitForFunction(() => {
    const el = document.getElementById("scroller");
    return el.scrollHeight - el.scrollTop - el.clientHeight < 5;
  });
});

step("focus lands somewhere sensible after every action; Escape closes what is open", async (t) => {
  const room = unique("focus-");
  const alice = await newUser(t, "alice");
  const bob = await newUser(t, "bob");
  await privateRoomWith(alice, room, [bob]);
  await bob.page.reload();
  await waitLive(bob.page);
  await joinRoom(bob.page, room);
  await joinRoom(alice.page, room);
  const page = alice.page;

  // Switching rooms: to the message box.
  await page.locator('#room-list button.room-open[data-room="general"]').click();
  assert.equal(await focused(page), "TEXTAREA#composer-input", "after switching rooms");
  await page.locator(`#room-list button.room-open[data-room="${room}"]`).click();
  assert.equal(await focused(page), "TEXTAREA#composer-input", "after switching back");

  // Deleting: asked first (Cancel keeps it), then the next message's Delete has the focus.
  await say(page, "one");
  await say(page, "two");
  await say(page, "three");
  const del = (text) =>
    page
      .locator("#messages li.msg")
      .filter({ has: page.locator(".msg-body", { hasText: new RegExp(`^${text}$`) }) })
      .getByRole("button", { name: /^Delete/ });
  await del("one").click();
  await page.getByRole("dialog").waitFor();
  assert.equal(await focused(page), "BUTTON#confirm-cancel", "the question starts on Cancel");
  await axeCheck(page, "the confirmation dialog");
  await page.screenshot({ path: join(SHOTS, "confirm-delete-desktop-1280x800.png") });
  await page.keyboard.press("Escape");
  await page.getByRole("dialog").waitFor({ state: "hidden" });
  assert.deepEqual(await shownBodies(page), ["one", "two", "three"], "Escape deleted nothing");
  await del("two").click();
  await confirm(page, "Delete");
  await waitGone(page, "two", "alice");
  assert.equal(
    await page.evaluate(() => document.activeElement.closest("li.msg")?.textContent.includes("three")),
    true,
    `after deleting, focus on the next message's Delete (${await focused(page)})`,
  );

  // Changing a role and removing a member: covered with the member events; here removal's focus.
  await page.getByRole("button", { name: `Remove: ${bob.name}` }).click();
  await confirm(page, "Remove");
  await page.locator("#members li", { hasText: bob.name }).waitFor({ state: "detached" });
  // The stream's `member` event may take the row away before the page has the answer (and
  // moves the focus): wait for the answer's part.
  await page
    .waitForFunction(() => document.activeElement?.id === "member-add-name", null, { timeout: 5000 })
    .catch(() => {});
  assert.equal(await focused(page), "INPUT#member-add-name", "after removing the last member, the add box");

  // Dismissing a notice: back to the message box.
  await bob.page.locator("#notice-text", { hasText: "You were removed" }).waitFor();
  await bob.page.getByRole("button", { name: "Dismiss notice" }).click();
  assert.equal(await focused(bob.page), "TEXTAREA#composer-input", "after dismissing a notice");

  // Escape closes "Create a room" and gives the focus to its summary.
  await page.getByText("Create a room").click();
  await page.getByLabel("New room name").focus();
  await page.keyboard.press("Escape");
  assert.equal(await page.locator("#create").getAttribute("open"), null, "Escape closed 'Create a room'");
  assert.equal(await focused(page), "SUMMARY", "focus on its summary");

  // Leaving a room with ×: an undo toast, the focus on the next room.
  await page.getByRole("button", { name: `Leave #${room}` }).click();
  await page.locator("#toast-text", { hasText: `You left #${room}.` }).waitFor();
  assert.match(await focused(page), /^(BUTTON\.room-open|INPUT#join-name)/, "after leaving, the next room");
  await axeCheck(page, "the undo toast");
  await page.getByRole("button", { name: "Undo" }).click();
  await page.locator(`#room-list button.room-open[aria-current="true"]`, { hasText: `#${room}` }).waitFor();
  await page.locator("#messages .msg-body", { hasText: "three" }).waitFor();
});

step("leaving for good is confirmed and says 'You left'; drafts survive reloads and a lost session, not a logout", async (t) => {
  const room = unique("drafts-");
  const alice = await newUser(t, "alice");
  const bob = await newUser(t, "bob");
  await privateRoomWith(alice, room, [bob]);
  await bob.page.reload();
  await waitLive(bob.page);
  await joinRoom(bob.page, room);

  // Drafts, per room.
  const box = bob.page.locator("#composer-input");
  await box.fill("half a thought for the club");
  await bob.page.locator('#room-list button.room-open[data-room="general"]').click();
  assert.equal(await box.inputValue(), "", "general has its own (empty) box");
  await box.fill("a draft in general");
  await bob.page.reload();
  await waitLive(bob.page);
  assert.equal(await box.inputValue(), "a draft in general", "the draft of the room on screen after a reload");
  await bob.page.locator(`#room-list button.room-open[data-room="${room}"]`).click();
  assert.equal(await box.inputValue(), "half a thought for the club", "each room keeps its own draft");

  // The session ends elsewhere (another tab logs out): the draft waits for the next login.
  const other = await bob.context.newPage();
  await other.goto("/");
  await waitLive(other);
  await other.getByRole("button", { name: "Log out" }).click();
  await bob.page.waitForURL(/\/login/, { timeout: 20_000 });
  await loginViaForm(bob.page, bob.name);
  await bob.page.locator(`#room-list button.room-open[aria-current="true"]`, { hasText: `#${room}` }).waitFor();
  assert.equal(await box.inputValue(), "half a thought for the club", "the draft after the session ended");
  await bob.page.locator('#room-list button.room-open[data-room="general"]').click();
  assert.equal(await box.inputValue(), "a draft in general", "another room's draft after the session ended");
  await bob.page.locator(`#room-list button.room-open[data-room="${room}"]`).click();

  // Leaving for good: asked first; then "You left", not "removed by you".
  await bob.page.getByRole("button", { name: "Leave this room for good" }).click();
  const dialog = bob.page.getByRole("dialog");
  await dialog.getByText(`Leave #${room} for good?`).waitFor();
  await dialog.getByRole("button", { name: "Cancel" }).click();
  assert.equal(await bob.page.locator(`#room-list button.room-open[data-room="${room}"]`).count(), 1, "Cancel left nothing");
  await bob.page.getByRole("button", { name: "Leave this room for good" }).click();
  await confirm(bob.page, "Leave");
  await bob.page.locator("#notice-text", { hasText: `You left #${room}.` }).waitFor();
  await new Promise((r) => setTimeout(r, 300));
  assert.doesNotMatch(await bob.page.locator("#notice-text").textContent(), /removed/, "not 'removed by you'");

  // Logging out on purpose forgets the drafts.
  await bob.page.locator('#room-list button.room-open[data-room="general"]').click();
  await box.fill("gone after logout");
  await bob.page.getByRole("button", { name: "Log out" }).click();
  await bob.page.waitForURL(`${base}/login`);
  await loginViaForm(bob.page, bob.name);
  assert.equal(await box.inputValue(), "", "no draft after logging out");
});

step("admins moderate from the page: stats, broadcast, disconnect, ban and unban", async (t) => {
  const admin = await newUserPage(t, DESKTOP);
  await loginViaForm(admin.page, ADMIN);
  const victim = await newUser(t, "xena");
  const page = admin.page;
  const opener = page.getByRole("button", { name: "Admin" });
  await opener.click();
  const dialog = page.getByRole("dialog", { name: "Admin" });
  await dialog.waitFor();
  await dialog.locator('dd[data-stat="connections"]').waitFor();
  const online = Number((await dialog.locator('dd[data-stat="users_online"]').textContent()).replace(/\D/g, ""));
  assert.ok(online >= 2, `users online: ${online}`);
  await axeCheck(page, "the admin panel");
  await page.screenshot({ path: join(SHOTS, "admin-desktop-1280x800.png") });

  // Disconnect: the user's page reconnects by itself.
  const before = await victim.page.evaluate(() => window.roomcast.connectionId);
  await dialog.getByLabel("Username").fill(victim.name);
  await dialog.getByRole("button", { name: "Disconnect" }).click();
  await dialog.locator("#user-status", { hasText: `${victim.name}: 1 stream closed` }).waitFor();
  await victim.page.waitForFunction((id) => window.roomcast.connectionId && window.roomcast.connectionId !== id, before, {
    timeout: 20_000,
  });

  // Ban, asked first: the page goes to the login, which says why.
  await dialog.getByRole("button", { name: "Ban", exact: true }).click();
  await confirm(page, "Ban");
  await dialog.locator("#user-status", { hasText: `${victim.name} is banned` }).waitFor();
  await victim.page.waitForURL(/\/login\?reason=session_ended$/, { timeout: 20_000 });
  await dialog.getByRole("button", { name: "Unban" }).click();
  await dialog.locator("#user-status", { hasText: `${victim.name} may log in again` }).waitFor();
  await loginViaForm(victim.page, victim.name);

  // An unknown user is named as such.
  await dialog.getByLabel("Username").fill("nobody_by_that_name");
  await dialog.getByRole("button", { name: "Disconnect" }).click();
  await dialog.locator("#user-status", { hasText: "There is no user called nobody_by_that_name" }).waitFor();
  await page.keyboard.press("Escape");
  await dialog.waitFor({ state: "hidden" });
  assert.equal(await focused(page), "BUTTON#admin-open", "focus back on the Admin button");
});

step("2,000 messages page by page: no page draw or task grows with the history, DOM <= 15,000 nodes", async (t) => {
  const room = unique("long-room-");
  const writer = await newUser(t, "yann");
  await joinRoom(writer.page, room);
  // 2,000 messages, four writers at once.
  await writer.page.evaluate(async (room) => {
    const post = async (i) => {
      const res = await fetch(`/api/rooms/${room}/messages`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ body: i % 7 === 0 ? `**b${i}** with \`code\` and https://example.com/${i}` : `b${i}` }),
      });
      if (res.status !== 201) throw new Error(`post ${i}: ${res.status}`);
    };
    for (let i = 1; i <= 2000; i += 4) await Promise.all([0, 1, 2, 3].map((k) => post(i + k)));
  }, room);

  const { context, page } = await newUserPage(t, DESKTOP);
  await register(context, "zoe");
  // Long tasks from the very start of the page.
  await page.addInitScript(() => {
    window.__long = [];
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) window.__long.push(e.duration);
    }).observe({ type: "longtask", buffered: true });
  });
  await page.goto("/");
  await waitLive(page);
  await joinRoom(page, room);
  await page.locator("#messages .msg-body").last().waitFor();
  const nodes = () => page.evaluate(() => {
    let n = 0;
    const walker = document.createTreeWalker(document, NodeFilter.SHOW_ALL);
    while (walker.nextNode()) n++;
    return n;
  });
  // Every message drawn on the way up, noted by the page itself (no per-page reads of the
  // list from here, which would add main-thread work of their own).
  await page.evaluate(() => {
    window.__seen = new Set();
    const note = (li) => li.dataset && li.dataset.id && window.__seen.add(li.querySelector(".msg-body").textContent.split(" ")[0]);
    document.querySelectorAll("#messages li.msg[data-id]").forEach(note);
    new MutationObserver((records) => {
      for (const r of records) r.addedNodes.forEach((n) => n.nodeType === 1 && note(n));
    }).observe(document.getElementById("messages"), { childList: true });
    // From here on, only what paging costs.
    window.__long.length = 0;
  });
  // The renderer's own trace says how long each of its main thread's tasks ran, in wall
  // time and in CPU time of that thread: on a machine shared with other work, wall time also
  // counts the moments the thread waited for a core.
  await browser.startTracing(page, { categories: ["disabled-by-default-devtools.timeline"] });
  const pages = [];
  let maxNodes = 0;
  for (let i = 0; i < 200 && (await page.locator("#history-start").isHidden()); i++) {
    const drawn = (await page.evaluate(() => window.roomcast.drawTimes)).length;
    await scrollTo(page, 0);
    await page
      .waitForFunction((n) => window.roomcast.drawTimes.length > n || !document.getElementById("history-start").hidden, drawn, { timeout: 15_000, polling: 100 })
      .catch(() => {});
    const times = await page.evaluate(() => window.roomcast.drawTimes);
    if (times.length > drawn) pages.push(times.at(-1));
    maxNodes = Math.max(maxNodes, await nodes());
  }
  await page.locator("#messages .msg-body", { hasText: /^b1$/ }).waitFor();
  const trace = JSON.parse((await browser.stopTracing()).toString());
  const events = trace.traceEvents || trace;
  const mains = new Set(
    events.filter((e) => e.name === "thread_name" && e.args.name === "CrRendererMain").map((e) => `${e.pid}:${e.tid}`),
  );
  const tasks = events.filter((e) => e.name === "RunTask" && e.ph === "X" && mains.has(`${e.pid}:${e.tid}`));
  const maxTaskCpu = Math.max(0, ...tasks.map((e) => (e.tdur ?? e.dur) / 1000));
  const maxTaskWall = Math.max(0, ...tasks.map((e) => e.dur / 1000));
  const longTasks = await page.evaluate(() => window.__long);
  const seen = await page.evaluate(() => window.__seen.size);
  const maxLong = longTasks.length ? Math.max(...longTasks) : 0;
  const worst = Math.max(...pages);
  const figures =
    `${pages.length} pages read; draw per page: max ${worst.toFixed(1)} ms, ` +
    `median ${pages.slice().sort((a, b) => a - b)[pages.length >> 1].toFixed(1)} ms, ` +
    `last ${pages.at(-1).toFixed(1)} ms; longest main-thread task ${maxTaskCpu.toFixed(1)} ms of CPU ` +
    `(${maxTaskWall.toFixed(1)} ms wall, ${tasks.length} tasks traced); long tasks seen by the page: ` +
    `${longTasks.length} (longest ${maxLong.toFixed(0)} ms wall); DOM nodes at most ${maxNodes}; ` +
    `messages drawn now ${(await page.evaluate(() => window.roomcast.view)).drawn}`;
  console.log(`# paging 2,000 messages: ${figures}`);
  t.diagnostic(figures);
  assert.equal(seen, 2000, `every message was shown on the way up (${seen})`);
  assert.ok(pages.length >= 39, `read page by page (${pages.length})`);
  assert.ok(tasks.length > 0, "the trace holds the renderer's tasks");
  // The figures above are the measurement (a quiet 2-core machine: pages draw in 10-30 ms,
  // the longest task 30-70 ms, depending on the machine). These bounds are what any machine
  // meets unless the work per page grows with the history already read, which at 2,000
  // messages costs hundreds of milliseconds a page.
  assert.ok(worst <= 120, `a page took ${worst.toFixed(1)} ms to draw`);
  assert.ok(maxTaskCpu <= 200, `a main-thread task ran ${maxTaskCpu.toFixed(1)} ms`);
  assert.ok(maxNodes <= 15000, `${maxNodes} DOM nodes`);

  // Back to the newest: drawn again from memory, the far top dropped.
  await page.locator("#jump", { hasText: "Newest messages" }).click();
  await page.locator("#messages .msg-body", { hasText: /^b2000$/ }).waitFor();
  assert.ok((await fromBottom(page)) < 5, "at the newest");
  // Away and back: no more nodes than before.
  await page.locator('#room-list button.room-open[data-room="general"]').click();
  await page.locator(`#room-list button.room-open[data-room="${room}"]`).click();
  const after = await nodes();
  t.diagnostic(`DOM nodes after switching away and back: ${after}`);
  console.log(`# paging 2,000 messages: DOM nodes after switching away and back: ${after}`);
  assert.ok(after <= 15000, `${after} DOM nodes after switching back`);
}, 240_000);

step("links, formatting, day separators and grouping, all from text", async (t) => {
  const room = unique("fmt-");
  const alice = await newUser(t, "alice");
  const bob = await newUser(t, "bob");
  await joinRoom(alice.page, room);
  await joinRoom(bob.page, room);
  await say(alice.page, "see https://example.com/a_b?x=1. and (https://example.org/wiki/Foo_(bar)) not javascript:alert(1)");
  await sayRaw(alice.page, "**bold** _italic_ `code` snake_case_name stays", "bold italic code snake_case_name");
  await sayRaw(alice.page, "```\nfn main() {\n    <b>x</b>\n}\n```", "fn main()");
  await say(bob.page, "a reply");
  const page = bob.page;
  await page.locator("#messages .msg-body", { hasText: "a reply" }).waitFor();
  const links = await page.$$eval("#messages a", (as) => as.map((a) => ({ href: a.href, text: a.textContent, rel: a.rel, target: a.target })));
  assert.deepEqual(links, [
    { href: "https://example.com/a_b?x=1", text: "https://example.com/a_b?x=1", rel: "noopener noreferrer", target: "_blank" },
    { href: "https://example.org/wiki/Foo_(bar)", text: "https://example.org/wiki/Foo_(bar)", rel: "noopener noreferrer", target: "_blank" },
  ]);
  const fmt = await page.evaluate(() => {
    const body = [...document.querySelectorAll("#messages .msg-body")][1];
    return {
      strong: body.querySelector("strong")?.textContent,
      em: body.querySelector("em")?.textContent,
      code: body.querySelector("code")?.textContent,
      text: body.textContent,
      pre: document.querySelector("#messages pre code")?.textContent,
      elements: document.querySelectorAll("#messages b, #messages script, #messages img").length,
    };
  });
  assert.deepEqual(fmt, {
    strong: "bold",
    em: "italic",
    code: "code",
    text: "bold italic code snake_case_name stays",
    pre: "fn main() {\n    <b>x</b>\n}",
    elements: 0,
  });
  // Grouped: alice's three messages under one name, then bob's.
  const names = await page.$$eval("#messages li.msg", (lis) =>
    lis.map((li) => [li.classList.contains("cont"), li.querySelector(".msg-user").textContent]),
  );
  assert.deepEqual(names, [
    [false, alice.name],
    [true, alice.name],
    [true, alice.name],
    [false, bob.name],
  ]);
  const card = await page.$eval("#messages li.msg", (li) => getComputedStyle(li).borderTopWidth);
  assert.equal(card, "0px", "no card around each message");
  assert.deepEqual(await page.$$eval("#messages li.day-sep", (l) => l.map((li) => li.textContent)), ["Today"]);
  await axeCheck(page, "formatted messages");

  // Days: a room whose history spans days shows one separator per day.
  const other = unique("days-");
  const day = (d, h) => new Date(Date.UTC(2024, 2, d, h, 0, 0)).toISOString();
  const u = { id: "00000000-0000-0000-0000-000000000001", username: "old_timer" };
  const history = [
    { id: 1, room: other, user: u, body: "march 3, morning", sent_at: day(3, 9) },
    { id: 2, room: other, user: u, body: "march 3, later", sent_at: day(3, 9) },
    { id: 3, room: other, user: u, body: "march 5", sent_at: day(5, 12) },
  ];
  const latest = (url) => url.pathname === `/api/rooms/${other}/messages` && !url.searchParams.has("before");
  await page.route(latest, (route) =>
    route.fulfill({ contentType: "application/json", body: JSON.stringify({ messages: history }) }),
  );
  await joinRoom(page, other);
  await page.locator("#messages .msg-body", { hasText: "march 5" }).waitFor();
  const seps = await page.$$eval("#messages li.day-sep", (l) => l.map((li) => li.textContent));
  assert.equal(seps.length, 2, `one separator per day: ${seps}`);
  assert.match(seps[0], /March 3, 2024/);
  assert.match(seps[1], /March 5, 2024/);
});

// ---------------------------------------------------------------------------------------
// The conversation: edits, reactions, replies, mentions

function escapeRe(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** The drawn message whose text is exactly `body`. */
function message(page, body) {
  return page
    .locator("#messages li.msg[data-id]")
    .filter({ has: page.locator(".msg-body", { hasText: new RegExp(`^${escapeRe(body)}$`) }) });
}

/** The reaction chip `emoji` of the message `li`. */
function chip(li, emoji) {
  return li.locator(`button.reaction[data-emoji="${emoji}"]`);
}

/** Waits until the chip `emoji` of `li` shows `count` (0: no chip), pressed or not. */
async function waitChip(li, emoji, count, pressed) {
  const c = chip(li, emoji);
  if (count === 0) {
    await c.waitFor({ state: "detached" });
    return;
  }
  await c.locator(".reaction-count", { hasText: new RegExp(`^${count}$`) }).waitFor();
  await li.page().waitForFunction(
    ({ el, want }) => el && el.getAttribute("aria-pressed") === want,
    { el: await c.elementHandle(), want: String(pressed) },
  );
}

/** Opens the picker from the message's React action and picks the emoji named `name`. */
async function reactWith(page, li, name) {
  await li.getByRole("button", { name: /^React to/ }).click();
  await page.locator("#picker[open]").waitFor();
  await page.locator("#picker").getByRole("button", { name, exact: true }).click();
  await page.locator("#picker[open]").waitFor({ state: "detached" });
}

/** The id of the message of `room` with body `body`, read through the API. */
async function messageId(page, room, body) {
  const res = await pageApi(page, "GET", `/api/rooms/${room}/messages?limit=200`);
  const m = res.body.messages.find((x) => x.body === body);
  assert.ok(m, `message "${body}" in #${room}`);
  return m.id;
}

/** Whether the focus is inside the drawn message with text `body`. */
function focusIn(page, body) {
  return page.evaluate((body) => {
    const li = document.activeElement && document.activeElement.closest("li.msg[data-id]");
    return !!li && li.querySelector(".msg-body")?.textContent === body;
  }, body);
}

step("two users edit, react, reply and mention each other live", async (t) => {
  const { alice, bob, room } = await newPair(t, "talk-");
  await say(alice.page, "lunch at noon?");
  const onAlice = message(alice.page, "lunch at noon?");
  const onBob = message(bob.page, "lunch at noon?");
  await onBob.waitFor();

  // Bob reacts from the picker: both see the chip, pressed for him only, his name in its label.
  await reactWith(bob.page, onBob, "thumbs up");
  await waitChip(onBob, "👍", 1, true);
  await waitChip(onAlice, "👍", 1, false);
  assert.equal(await chip(onAlice, "👍").getAttribute("aria-label"), `👍 1: ${bob.name}`);
  assert.equal(await chip(onBob, "👍").getAttribute("aria-label"), "👍 1: you");
  assert.match(await chip(onAlice, "👍").getAttribute("title"), new RegExp(`^${bob.name} reacted`));

  // Alice adds hers with the chip (2 on both sides); Bob takes his back (1, Alice's).
  await chip(onAlice, "👍").click();
  await waitChip(onAlice, "👍", 2, true);
  await waitChip(onBob, "👍", 2, true);
  assert.equal(await chip(onBob, "👍").getAttribute("aria-label"), `👍 2: you and ${alice.name}`);
  await chip(onBob, "👍").click();
  await waitChip(onBob, "👍", 1, false);
  await waitChip(onAlice, "👍", 1, true);
  assert.equal(await chip(onBob, "👍").getAttribute("aria-label"), `👍 1: ${alice.name}`);

  // Any emoji: text is refused before it is sent, a flag is taken.
  await onAlice.getByRole("button", { name: "Add a reaction" }).click();
  await alice.page.locator("#picker[open]").waitFor();
  await axeCheck(alice.page, "the reaction picker");
  const any = alice.page.getByLabel("Any emoji");
  await any.fill(":)");
  await any.press("Enter");
  await alice.page.locator("#picker-error", { hasText: "not an emoji" }).waitFor();
  assert.equal(await any.getAttribute("aria-invalid"), "true");
  await any.fill("🇫🇷");
  await any.press("Enter");
  await alice.page.locator("#picker[open]").waitFor({ state: "detached" });
  await waitChip(onBob, "🇫🇷", 1, false);

  // A refusal only the server knows shows in the picker: a message holds 20 distinct emoji.
  const id = await messageId(alice.page, room, "lunch at noon?");
  const many = ["😀", "😃", "😄", "😁", "😆", "😅", "🤣", "😊", "😇", "🙂", "🙃", "😉", "😌", "😍", "🥰", "😘", "😗", "😙"];
  for (const e of many) {
    const res = await pageApi(bob.page, "PUT", `/api/rooms/${room}/messages/${id}/reactions/${encodeURIComponent(e)}`);
    assert.equal(res.status, 200, `reaction ${e}: ${JSON.stringify(res.body)}`);
  }
  await waitChip(onAlice, "😙", 1, false);
  assert.equal(await onAlice.locator("button.reaction").count(), 20);
  await onAlice.getByRole("button", { name: "Add a reaction" }).click();
  await any.fill("🦀");
  await any.press("Enter");
  await alice.page.locator("#picker-error", { hasText: /20/ }).waitFor();
  t.diagnostic(`the server's refusal, as the picker shows it: ${await alice.page.locator("#picker-error").textContent()}`);
  await alice.page.keyboard.press("Escape");
  await alice.page.locator("#picker[open]").waitFor({ state: "detached" });
  for (const e of many) {
    await pageApi(bob.page, "DELETE", `/api/rooms/${room}/messages/${id}/reactions/${encodeURIComponent(e)}`);
  }
  await waitChip(onAlice, "😙", 0);

  // Alice edits in place; Bob sees the new text, "edited" with its time, the reactions kept.
  await onAlice.getByRole("button", { name: "Edit your message" }).click();
  const editBox = alice.page.getByRole("textbox", { name: "Editing your message" });
  assert.equal(await editBox.evaluate((el) => el === document.activeElement), true, "the edit box has the focus");
  assert.equal(await editBox.inputValue(), "lunch at noon?");
  await axeCheck(alice.page, "a message being edited");
  // The same limit and counter as the message box: too long is refused and kept.
  await editBox.fill("x".repeat(4001));
  const beingEdited = alice.page.locator("#messages li.msg.editing");
  const count = beingEdited.locator(".edit-count");
  await count.filter({ hasText: "4,001 / 4,000: 1 too many" }).waitFor();
  await editBox.press("Enter");
  await beingEdited.locator(".edit-error", { hasText: "the limit is 4,000" }).waitFor();
  assert.equal(await editBox.getAttribute("aria-invalid"), "true");
  assert.equal(await message(bob.page, "lunch at noon?").count(), 1, "nothing was saved");
  await editBox.fill("lunch at 12:30?");
  assert.equal(await count.isHidden(), true, "the counter goes under the limit");
  await editBox.press("Enter");
  const edited = message(bob.page, "lunch at 12:30?");
  await edited.waitFor();
  await message(alice.page, "lunch at 12:30?").waitFor();
  const mark = edited.locator("time.msg-edited");
  assert.match(await mark.getAttribute("title"), /^Edited /, "the edit time on hover");
  assert.ok(Date.parse(await mark.getAttribute("datetime")) > 0, "a machine-readable edit time");
  assert.match(await mark.textContent(), /^edited \S/, "a screen reader hears the time with it");
  await waitChip(edited, "👍", 1, false);
  await waitChip(edited, "🇫🇷", 1, false);

  // A reply is dropped with Escape or ×; then Bob replies, mentioning Alice through the
  // completion list.
  const replyTo = edited.getByRole("button", { name: `Reply to ${alice.name}` });
  await replyTo.click();
  await bob.page.locator("#reply-bar").waitFor();
  await bob.page.keyboard.press("Escape");
  await bob.page.locator("#reply-bar").waitFor({ state: "hidden" });
  await replyTo.click();
  await bob.page.getByRole("button", { name: "Cancel reply" }).click();
  await bob.page.locator("#reply-bar").waitFor({ state: "hidden" });
  // Bob is on a phone: the room gets the focus, so that no keyboard pops up unasked.
  assert.equal(await focused(bob.page), "MAIN#main", "after dropping a reply");
  await replyTo.click();
  await bob.page.locator("#reply-bar", { hasText: "lunch at 12:30?" }).waitFor();
  assert.equal(await focused(bob.page), "TEXTAREA#composer-input", "replying puts the focus in the box");
  const box = bob.page.locator("#composer-input");
  assert.match(await box.getAttribute("aria-describedby"), /reply-text/, "the box says what it answers");
  await box.pressSequentially(`see you then @${alice.name.slice(0, 3)}`);
  const option = bob.page.locator("#mention-list [role=option]", { hasText: alice.name });
  await option.waitFor();
  assert.equal(
    await box.getAttribute("aria-activedescendant"),
    await bob.page.locator("#mention-list [role=option][aria-selected=true]").getAttribute("id"),
  );
  await box.press("Tab");
  assert.equal(await box.inputValue(), `see you then @${alice.name} `);
  assert.equal(await bob.page.locator("#mention-list").isHidden(), true);
  await box.press("Enter");
  const replyText = `see you then @${alice.name}`;
  const reply = message(alice.page, replyText);
  await reply.waitFor();
  assert.equal(await bob.page.locator("#reply-bar").isHidden(), true, "the reply bar goes once sent");
  assert.equal(await reply.locator(".msg-quote .quote-user").textContent(), alice.name);
  assert.equal(await reply.locator(".msg-quote .quote-text").textContent(), "lunch at 12:30?");
  // It mentions Alice: it stands out on her page, and says so.
  assert.equal(await reply.evaluate((li) => li.classList.contains("mentions-me")), true);
  assert.equal(await reply.locator(".msg-mention").textContent(), "mentions you");
  assert.equal(await reply.locator(".mention-me").textContent(), `@${alice.name}`);
  assert.equal(
    await message(bob.page, replyText).evaluate((li) => li.classList.contains("mentions-me")),
    false,
    "not on Bob's",
  );

  // Alice mentions Bob back, picking his name with the mouse.
  const aliceBox = alice.page.locator("#composer-input");
  await aliceBox.pressSequentially(`thanks @${bob.name.slice(0, 2)}`);
  await alice.page.locator("#mention-list [role=option]", { hasText: bob.name }).click();
  assert.equal(await aliceBox.inputValue(), `thanks @${bob.name} `);
  assert.equal(await focused(alice.page), "TEXTAREA#composer-input", "picking keeps the focus in the box");
  await aliceBox.press("Enter");
  const thanks = message(bob.page, `thanks @${bob.name}`);
  await thanks.waitFor();
  assert.equal(await thanks.evaluate((li) => li.classList.contains("mentions-me")), true);

  // No serious accessibility problem with reactions, a reply and a mention on screen.
  await axeCheck(alice.page, "the chat with reactions, a reply and a mention, desktop");
  await axeCheck(bob.page, "the chat with reactions, a reply and a mention, phone");

  // The original edited again: the quote follows on both pages.
  await message(alice.page, "lunch at 12:30?").getByRole("button", { name: "Edit your message" }).click();
  await editBox.fill("lunch at 12:45?");
  await editBox.press("Enter");
  for (const p of [alice.page, bob.page]) {
    await message(p, replyText).locator(".msg-quote .quote-text", { hasText: /^lunch at 12:45\?$/ }).waitFor();
  }

  // The quote leads to the original: in view, marked, focused.
  await message(bob.page, replyText).locator("button.msg-quote").click();
  const original = message(bob.page, "lunch at 12:45?");
  await bob.page.waitForFunction((el) => el.classList.contains("flash"), await original.elementHandle());
  assert.equal(await focusIn(bob.page, "lunch at 12:45?"), true, "the original has the focus");

  // The original deleted: the reply says so on both pages.
  await message(alice.page, "lunch at 12:45?").getByRole("button", { name: /^Delete message/ }).click();
  await confirm(alice.page, "Delete");
  for (const p of [alice.page, bob.page]) {
    await message(p, replyText).locator(".msg-quote.gone", { hasText: "Original message deleted" }).waitFor();
  }
  for (const p of [alice.page, bob.page]) assertAscendingUnique(await shownMessages(p), "after the conversation");
});

step("offline while the other edits, reacts and deletes: all of it shows after resume, without a reload", async (t) => {
  const { alice, bob, room } = await newPair(t, "away-");
  await say(alice.page, "first draft");
  await say(alice.page, "react to me");
  await say(alice.page, "soon gone");
  await say(bob.page, "bob was here");
  await message(alice.page, "bob was here").waitFor();
  await reactWith(alice.page, message(alice.page, "bob was here"), "red heart");
  await waitChip(message(bob.page, "bob was here"), "❤️", 1, false);
  // A reply to what will be edited while Bob is away.
  await message(bob.page, "first draft").getByRole("button", { name: `Reply to ${alice.name}` }).click();
  await bob.page.locator("#composer-input").fill("a reply to the draft");
  await bob.page.locator("#composer-input").press("Enter");
  await message(bob.page, "a reply to the draft").waitFor();
  await bob.page.evaluate(() => {
    window.__sameDocument = true;
  });

  await bob.context.setOffline(true);
  await disconnect(bob.name);
  await bob.page.waitForFunction(() => document.getElementById("conn").dataset.state === "reconnecting");

  const edit = async (from, to) => {
    await message(alice.page, from).getByRole("button", { name: "Edit your message" }).click();
    const box = alice.page.getByRole("textbox", { name: "Editing your message" });
    await box.fill(to);
    await box.press("Enter");
    await message(alice.page, to).waitFor();
  };
  await edit("first draft", "final text");
  await reactWith(alice.page, message(alice.page, "react to me"), "party popper");
  await waitChip(message(alice.page, "react to me"), "🎉", 1, true);
  await chip(message(alice.page, "bob was here"), "❤️").click();
  await waitChip(message(alice.page, "bob was here"), "❤️", 0);
  await message(alice.page, "soon gone").getByRole("button", { name: /^Delete message/ }).click();
  await confirm(alice.page, "Delete");
  await waitGone(alice.page, "soon gone", "alice");
  // A message posted, reacted to and edited while Bob is away: its replay carries its state
  // as it is read, and the events after it change nothing more.
  await say(alice.page, "posted while away");
  await reactWith(alice.page, message(alice.page, "posted while away"), "fire");
  await edit("posted while away", "posted while away, then edited");
  await new Promise((r) => setTimeout(r, 1000));
  assert.equal(await message(bob.page, "first draft").count(), 1, "nothing reaches Bob while offline");

  await bob.context.setOffline(false);
  await waitLive(bob.page, 20_000);
  const late = message(bob.page, "posted while away, then edited");
  await late.waitFor({ timeout: 20_000 });
  await message(bob.page, "final text").waitFor();
  await waitChip(message(bob.page, "react to me"), "🎉", 1, false);
  await waitChip(message(bob.page, "bob was here"), "❤️", 0);
  await waitGone(bob.page, "soon gone", "bob (resumed)");
  await waitChip(late, "🔥", 1, false);
  await message(bob.page, "a reply to the draft").locator(".msg-quote .quote-text", { hasText: /^final text$/ }).waitFor();
  // Give a double count or a duplicate a moment to show.
  await new Promise((r) => setTimeout(r, 1000));
  assert.equal(await chip(late, "🔥").locator(".reaction-count").textContent(), "1", "counted once");
  assert.equal(await late.locator("time.msg-edited").count(), 1, "shown as edited");
  assert.equal(await bob.page.evaluate(() => window.__sameDocument), true, "no reload");
  const bodies = await shownBodies(bob.page);
  assert.deepEqual(bodies, [
    "final text",
    "react to me",
    "bob was here",
    "a reply to the draft",
    "posted while away, then edited",
  ]);
  assertAscendingUnique(await shownMessages(bob.page), "after resume");
  t.diagnostic(`resumed by ${await bob.page.evaluate(() => window.roomcast.resumedBy)} in #${room}`);
});

step("a capped replay: messages in memory are read again, so an edit the replay skipped shows", async (t) => {
  // A server of its own that replays at most 3 events on a resume.
  const url = await extraServer(t, { ROOMCAST__HISTORY__REPLAY_LIMIT: "3" });
  const room = unique("capped-");
  const alice = await newUser(t, "alice", DESKTOP, { baseURL: url });
  const bob = await newUser(t, "bob", DESKTOP, { baseURL: url });
  await joinRoom(alice.page, room);
  await joinRoom(bob.page, room);
  await say(alice.page, "an old line");
  await say(alice.page, "liked before");
  await message(bob.page, "liked before").waitFor();
  await bob.context.setOffline(true);
  const res = await fetch(`${url}/api/admin/users/${bob.name}/disconnect`, {
    method: "POST",
    headers: { Authorization: `Bearer ${ADMIN_TOKEN}` },
  });
  assert.equal(res.status, 200);
  await bob.page.waitForFunction(() => document.getElementById("conn").dataset.state === "reconnecting");
  // The edit and the reaction come first; the 6 posts after them fill the replay.
  await message(alice.page, "an old line").getByRole("button", { name: "Edit your message" }).click();
  const box = alice.page.getByRole("textbox", { name: "Editing your message" });
  await box.fill("an old line, corrected");
  await box.press("Enter");
  await message(alice.page, "an old line, corrected").waitFor();
  await reactWith(alice.page, message(alice.page, "liked before"), "eyes");
  await postMany(alice.page, room, 1, 6, 0);
  await bob.context.setOffline(false);
  await waitLive(bob.page, 20_000);
  await message(bob.page, "b6").waitFor({ timeout: 20_000 });
  await message(bob.page, "an old line, corrected").waitFor();
  await waitChip(message(bob.page, "liked before"), "👀", 1, false);
  assert.deepEqual(await shownBodies(bob.page), [
    "an old line, corrected",
    "liked before",
    "b1",
    "b2",
    "b3",
    "b4",
    "b5",
    "b6",
  ]);
});

step("keyboard only: react, reply with a mention, edit and cancel, without the mouse", async (t) => {
  const room = unique("keytalk-");
  const kima = await newUser(t, "kima");
  const kimb = await newUser(t, "kimb");
  const bob = await newUser(t, "bob");
  for (const u of [kima, kimb, bob]) await joinRoom(u.page, room);
  await waitPresence(bob.page, [kima.name, kimb.name, bob.name]);
  await say(kima.page, "who has the keys?");
  await message(bob.page, "who has the keys?").waitFor();
  const page = bob.page;
  const active = () =>
    page.evaluate(() => {
      const el = document.activeElement;
      return { cls: el.className, label: el.getAttribute("aria-label") || el.textContent };
    });

  // From the message box, Shift+Tab reaches the last message's actions: one stop, arrows move.
  await page.locator("#composer-input").focus();
  await page.keyboard.press("Shift+Tab");
  assert.match((await active()).label, /^React to /, `Shift+Tab from the box: ${JSON.stringify(await active())}`);
  const bar = message(page, "who has the keys?").locator(".msg-actions");
  assert.equal(await bar.getAttribute("role"), "toolbar");
  assert.equal(await bar.locator('[tabindex="0"]').count(), 1, "one Tab stop in the actions");

  // React: Enter opens the picker on its first emoji; arrows move; Enter picks; back on React.
  await page.keyboard.press("Enter");
  await page.locator("#picker[open]").waitFor();
  assert.equal((await active()).label, "thumbs up");
  await page.keyboard.press("ArrowRight");
  assert.equal((await active()).label, "red heart");
  await page.keyboard.press("Enter");
  await page.locator("#picker[open]").waitFor({ state: "detached" });
  const keys = message(page, "who has the keys?");
  await waitChip(keys, "❤️", 1, true);
  assert.match((await active()).label, /^React to /, "the focus is back on React");

  // Reply: the next action; the box gets the focus and the quote above it.
  await page.keyboard.press("ArrowRight");
  assert.match((await active()).label, /^Reply to /);
  await page.keyboard.press("Enter");
  assert.equal(await focused(page), "TEXTAREA#composer-input");
  await page.locator("#reply-bar", { hasText: "who has the keys?" }).waitFor();

  // Completion: two names start with "kim"; arrows choose, Escape closes the list only.
  await page.keyboard.type("@kim");
  const options = page.locator("#mention-list [role=option]");
  await page.waitForFunction(() => document.querySelectorAll("#mention-list [role=option]").length === 2);
  const selected = () => page.locator("#mention-list [aria-selected=true]").textContent();
  assert.match(await selected(), new RegExp(`^${kima.name}`));
  await page.keyboard.press("ArrowDown");
  assert.match(await selected(), new RegExp(`^${kimb.name}`));
  await page.keyboard.press("ArrowDown");
  assert.match(await selected(), new RegExp(`^${kima.name}`), "wraps around");
  await page.keyboard.press("Escape");
  assert.equal(await page.locator("#mention-list").isHidden(), true, "Escape closes the list");
  assert.equal(await page.locator("#reply-bar").isHidden(), false, "and keeps the reply");
  assert.equal(await options.count(), 0);
  for (let i = 0; i < 4; i++) await page.keyboard.press("Backspace");
  await page.keyboard.type("@kim");
  await page.waitForFunction(() => document.querySelectorAll("#mention-list [role=option]").length === 2);
  await page.screenshot({ path: join(SHOTS, "mention-desktop-1280x800.png") });
  await axeCheck(page, "the @ completion list");
  await page.keyboard.press("Backspace");
  await page.keyboard.type("mb");
  await page.locator("#mention-list [role=option]", { hasText: kimb.name }).waitFor();
  await page.keyboard.press("Enter");
  assert.equal(await page.locator("#composer-input").inputValue(), `@${kimb.name} `);
  await page.keyboard.type("has them");
  await page.keyboard.press("Enter");
  const answer = message(kimb.page, `@${kimb.name} has them`);
  await answer.waitFor();
  assert.equal(await answer.evaluate((li) => li.classList.contains("mentions-me")), true);
  assert.equal(await answer.locator(".quote-text").textContent(), "who has the keys?");

  // Edit: Arrow Up in the empty box opens the last message of one's own; Shift+Enter is a
  // new line, Enter saves, and the focus comes back to the box.
  assert.equal(await focused(page), "TEXTAREA#composer-input");
  await page.keyboard.press("ArrowUp");
  const editBox = page.getByRole("textbox", { name: "Editing your message" });
  await editBox.waitFor();
  assert.equal(await editBox.evaluate((el) => el === document.activeElement), true, "Arrow Up opens the edit box");
  await page.keyboard.press("ControlOrMeta+a");
  await page.keyboard.type("kimb has them,");
  await page.keyboard.press("Shift+Enter");
  await page.keyboard.type("ask there");
  await page.keyboard.press("Enter");
  await message(kimb.page, "kimb has them,\nask there").waitFor();
  // The other reader can see the edit before the author's own answer arrives; the box
  // closes on that answer.
  await editBox.waitFor({ state: "detached" });
  assert.equal(await focused(page), "TEXTAREA#composer-input", "back in the box after saving");

  // Escape cancels an edit: nothing changes.
  await page.keyboard.press("ArrowUp");
  await editBox.waitFor();
  await page.keyboard.type(" and more");
  await page.keyboard.press("Escape");
  await editBox.waitFor({ state: "detached" });
  assert.equal(await focused(page), "TEXTAREA#composer-input", "back in the box after Escape");
  await message(page, "kimb has them,\nask there").waitFor();

  // "edited" takes the focus and shows its time; the actions move with Home and End.
  await page.keyboard.press("Shift+Tab");
  const mine = message(page, "kimb has them,\nask there");
  assert.equal(await focusIn(page, "kimb has them,\nask there"), true);
  await page.keyboard.press("End");
  assert.match((await active()).label, /^Delete message/);
  await page.keyboard.press("Home");
  assert.match((await active()).label, /^React to /);
  await page.keyboard.press("Shift+Tab"); // "edited", after the text
  const tip = await page.evaluate(() => {
    const el = document.activeElement;
    return { cls: el.className, after: getComputedStyle(el, "::after").content };
  });
  assert.equal(tip.cls, "msg-edited");
  assert.match(tip.after, /Edited /, "the edit time shows on focus");
  await page.keyboard.press("Shift+Tab"); // the quote
  assert.match((await active()).cls, /msg-quote/);
  assert.equal(await mine.locator("time.msg-edited").count(), 1);

  // A chip toggles with the keyboard too; when it goes, the focus stays in the message.
  await kima.page.locator("#composer-input").focus();
  await kima.page.keyboard.press("Shift+Tab"); // React on the newest message: Bob's
  await kima.page.keyboard.press("Enter");
  await kima.page.locator("#picker[open]").waitFor();
  await kima.page.keyboard.press("Enter"); // thumbs up
  await waitChip(mine, "👍", 1, false);
  await chip(mine, "👍").focus();
  await page.keyboard.press("Space");
  await waitChip(mine, "👍", 2, true);
  await page.keyboard.press("Space");
  await waitChip(mine, "👍", 1, false);

  // The quote, activated with the keyboard, takes the focus to the original.
  await mine.locator("button.msg-quote").focus();
  await page.keyboard.press("Enter");
  await page.waitForFunction(() => document.activeElement?.matches("li.msg.flash"));
  assert.equal(await focusIn(page, "who has the keys?"), true);
});

step("a reply's quote leads to its original, reading older history page by page", async (t) => {
  const room = unique("far-");
  const alice = await newUser(t, "alice");
  await joinRoom(alice.page, room);
  await say(alice.page, "the original, far up");
  const id = await messageId(alice.page, room, "the original, far up");
  await postMany(alice.page, room, 1, 130, 0);
  const res = await pageApi(alice.page, "POST", `/api/rooms/${room}/messages`, {
    body: "an answer to the far one",
    reply_to: id,
  });
  assert.equal(res.status, 201);
  assert.equal(res.body.message.reply_to.excerpt, "the original, far up");

  const bob = await newUser(t, "bob");
  const pages = [];
  bob.page.on("request", (r) => {
    if (/\/messages\?before=/.test(r.url())) pages.push(r.url());
  });
  await joinRoom(bob.page, room);
  const answer = message(bob.page, "an answer to the far one");
  await answer.waitFor();
  assert.equal(await message(bob.page, "the original, far up").count(), 0, "not loaded yet");
  await answer.locator("button.msg-quote").click();
  const original = message(bob.page, "the original, far up");
  await original.waitFor();
  await bob.page.waitForFunction(() => document.activeElement?.matches("li.msg.flash"));
  assert.equal(await focusIn(bob.page, "the original, far up"), true, "the original has the focus");
  const inView = await original.evaluate((li) => {
    const r = li.getBoundingClientRect();
    const s = document.getElementById("scroller").getBoundingClientRect();
    return r.top >= s.top && r.bottom <= s.bottom;
  });
  assert.ok(inView, "the original is in view");
  assert.ok(pages.length >= 2, `older pages read: ${pages.length}`);
  t.diagnostic(`pages read to reach the original: ${pages.length}`);
});

step("phone 390x844 with touch: a tap shows a message's actions, the picker is a sheet, nothing is wider", async (t) => {
  const room = unique("thumb-");
  const alice = await newUser(t, "alice");
  const bob = await newUser(t, "bob", TALL_PHONE, { hasTouch: true, isMobile: true });
  await joinRoom(alice.page, room);
  await joinRoom(bob.page, room);
  await say(alice.page, "tap me");
  const page = bob.page;
  const li = message(page, "tap me");
  await li.waitFor();
  const actions = li.locator(".msg-actions");
  const shown = () => actions.evaluate((el) => getComputedStyle(el).opacity === "1" && getComputedStyle(el).pointerEvents !== "none");
  assert.equal(await page.evaluate(() => matchMedia("(hover: none)").matches), true, "a touch screen without hover");
  assert.equal(await shown(), false, "actions wait for a tap");

  // A tap on the message shows its actions; React opens the picker at the bottom.
  await li.locator(".msg-body").tap();
  assert.equal(await shown(), true, "a tap shows them");
  await li.getByRole("button", { name: /^React to/ }).tap();
  const picker = page.locator("#picker[open]");
  await picker.waitFor();
  const box = await picker.boundingBox();
  assert.ok(Math.abs(box.y + box.height - TALL_PHONE.height) < 2 && box.width >= TALL_PHONE.width - 1, `a sheet at the bottom: ${JSON.stringify(box)}`);
  await axeCheck(page, "the reaction picker on a phone");
  await page.screenshot({ path: join(SHOTS, "react-phone-390x844.png") });
  await picker.getByRole("button", { name: "thumbs up" }).tap();
  await waitChip(li, "👍", 1, true);

  // Reply and edit by tapping.
  await li.locator(".msg-body").tap();
  await li.getByRole("button", { name: `Reply to ${alice.name}` }).tap();
  await page.locator("#reply-bar").waitFor();
  await page.locator("#composer-input").fill("on my way");
  await page.getByRole("button", { name: "Send" }).tap();
  const mine = message(page, "on my way");
  await mine.waitFor();
  await mine.locator(".msg-body").tap();
  await mine.getByRole("button", { name: "Edit your message" }).tap();
  await page.getByRole("textbox", { name: "Editing your message" }).fill("on my way, 5 minutes");
  await page.getByRole("button", { name: "Save" }).tap();
  await message(alice.page, "on my way, 5 minutes").waitFor();
  await message(page, "on my way, 5 minutes").locator("time.msg-edited").waitFor();

  const overflow = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(overflow <= TALL_PHONE.width, `page is ${overflow}px wide`);
  await axeCheck(page, "the chat with a reaction and a reply on a phone");
});

step("screenshots of the main states, desktop and phone", async (t) => {
  const room = unique("lounge-");
  const alice = await newUser(t, "alice");
  const bob = await newUser(t, "bob", TALL_PHONE);
  await joinRoom(alice.page, room);
  await joinRoom(bob.page, room);
  await sayRaw(bob.page, "Morning! Anyone up for lunch at **noon**?", "lunch at noon?");
  const lunch = message(alice.page, "Morning! Anyone up for lunch at noon?");
  await lunch.getByRole("button", { name: `Reply to ${bob.name}` }).click();
  await say(alice.page, "Yes, the usual place: https://example.com/menu");
  await reactWith(alice.page, lunch, "thumbs up");
  await reactWith(bob.page, message(bob.page, "Yes, the usual place: https://example.com/menu"), "party popper");
  await reactWith(bob.page, message(bob.page, "Yes, the usual place: https://example.com/menu"), "red heart");
  await sayRaw(alice.page, `I'll bring the \`slides\` for _later_, @${bob.name}.`, "the slides for later");
  await sayRaw(bob.page, "```\ncargo test --test api\n```\nall green here", "all green here");
  await bob.page.locator("#messages li.msg[data-id]", { hasText: "all green here" }).getByRole("button", { name: "Edit your message" }).click();
  const fix = bob.page.getByRole("textbox", { name: "Editing your message" });
  await fix.fill("```\ncargo test --test api\n```\nall green here, 212 tests");
  await fix.press("Enter");
  await alice.page.locator("#messages li.msg[data-id]", { hasText: "all green here, 212 tests" }).locator("time.msg-edited").waitFor();
  await waitChip(message(bob.page, "Yes, the usual place: https://example.com/menu"), "❤️", 1, true);
  await waitChip(message(alice.page, "Yes, the usual place: https://example.com/menu"), "❤️", 1, false);
  await alice.page.locator("#composer-input").focus();
  await alice.page.locator("#composer-input").pressSequentially("see you", { delay: 20 });
  await bob.page.locator("#typing", { hasText: `${alice.name} is typing…` }).waitFor();
  await alice.page.screenshot({ path: join(SHOTS, "chat-desktop-1280x800.png") });
  await bob.page.screenshot({ path: join(SHOTS, "chat-phone-390x844.png") });
  await axeCheck(alice.page, "the chat, desktop");
  await axeCheck(bob.page, "the chat, phone");
});

step("access tokens: made with a name, the secret shown once with Copy, listed, revoked after asking", async (t) => {
  const { page, context } = await newUser(t, "tok");
  await context.grantPermissions(["clipboard-read", "clipboard-write"]).catch(() => {});
  const opener = page.getByRole("button", { name: "Tokens" });
  await opener.click();
  const dialog = page.getByRole("dialog", { name: "Access tokens" });
  await dialog.waitFor();
  assert.equal(await focused(page), "INPUT#token-name", "the focus starts in the name field");
  await dialog.locator("#tokens-status", { hasText: "No tokens yet." }).waitFor();

  // An empty name is refused next to the field, which says why.
  await page.keyboard.press("Enter");
  await dialog.locator("#token-name-error", { hasText: "1–64 characters" }).waitFor();
  assert.equal(await dialog.locator("#token-name").getAttribute("aria-invalid"), "true");

  // Made: the secret shows once, with Copy (focused) and the warning.
  await page.keyboard.type("deploy bot");
  await page.keyboard.press("Enter");
  await dialog.locator("#token-created").waitFor();
  await dialog.getByText("You will not see it again.").waitFor();
  const secret = (await dialog.locator("#token-secret").textContent()).trim();
  assert.match(secret, /^rc_[0-9a-f]{64}$/, "the secret is shown");
  assert.equal(await focused(page), "BUTTON#token-copy", "the focus is on Copy");
  assert.equal(await dialog.locator("#token-name-error").textContent(), "", "the error went away");
  await page.keyboard.press("Enter");
  await dialog.locator("#token-copy-status", { hasText: /Copied|Selected/ }).waitFor();
  const item = dialog.locator(".token-item", { hasText: "deploy bot" });
  await item.waitFor();
  await item.locator(".token-meta", { hasText: "Never used" }).waitFor();
  const created = await item.locator(".token-meta").textContent();
  assert.match(created, /^Created \S/, `the list says when it was made: ${created}`);
  await axeCheck(page, "the access tokens dialog with a new secret");
  await page.screenshot({ path: join(SHOTS, "tokens-desktop-1280x800.png") });

  // The secret works as a bearer, and is in no listing.
  const withToken = (path) =>
    page.evaluate(
      async ({ path, secret }) =>
        (await fetch(path, { headers: { Authorization: `Bearer ${secret}` }, credentials: "omit" })).status,
      { path, secret },
    );
  assert.equal(await withToken("/api/me"), 200, "the new token works");
  const listed = await pageApi(page, "GET", "/api/me/tokens");
  assert.ok(!JSON.stringify(listed.body).includes(secret), "the list never carries the secret");

  // Past the cap, the error shows next to the field.
  for (let i = 0; i < 19; i++) {
    const r = await pageApi(page, "POST", "/api/me/tokens", { name: `script ${i}` });
    assert.equal(r.status, 201, `token ${i}`);
  }
  await dialog.locator("#token-name").fill("one too many");
  await dialog.getByRole("button", { name: "Create token" }).click();
  await dialog.locator("#token-name-error", { hasText: "Revoke one first" }).waitFor();
  assert.equal(await focused(page), "INPUT#token-name", "the focus stays in the field");

  // Revoke, asked first: the row goes and the token stops working.
  await item.getByRole("button", { name: "Revoke token deploy bot" }).click();
  await confirm(page, "Revoke");
  await item.waitFor({ state: "detached" });
  await dialog.locator("#tokens-status", { hasText: "is revoked" }).waitFor();
  assert.equal(await withToken("/api/me"), 401, "a revoked token is refused");
  const after = await focused(page);
  assert.ok(/token-revoke|INPUT#token-name/.test(after) || after.startsWith("BUTTON"), `focus after revoking: ${after}`);

  // Escape closes it and forgets the secret; the focus goes back to Tokens.
  await page.keyboard.press("Escape");
  await dialog.waitFor({ state: "hidden" });
  assert.equal(await focused(page), "BUTTON#tokens-open", "focus back on the Tokens button");
  // Forgotten as the dialog closes, which may land a moment after it is hidden.
  await page.waitForFunction(() => document.querySelector("#token-secret")?.textContent === "", null, { timeout: 2000 }).catch(() => {});
  assert.equal(await page.locator("#token-secret").textContent(), "", "the secret is not kept on the page");
});

step("access tokens on a phone 390x844: the dialog fits, nothing is wider than the screen", async (t) => {
  const { page } = await newUser(t, "ptok", TALL_PHONE);
  await page.getByRole("button", { name: "Tokens" }).click();
  const dialog = page.getByRole("dialog", { name: "Access tokens" });
  await dialog.waitFor();
  await page.keyboard.type("phone script");
  await page.keyboard.press("Enter");
  await dialog.locator("#token-created").waitFor();
  await dialog.locator(".token-item", { hasText: "phone script" }).waitFor();
  const widths = await page.evaluate(() => ({
    page: document.documentElement.scrollWidth,
    screen: innerWidth,
    dialog: document.getElementById("tokens").getBoundingClientRect().right,
  }));
  assert.ok(widths.page <= widths.screen, `the page is no wider than the screen: ${JSON.stringify(widths)}`);
  assert.ok(widths.dialog <= widths.screen, `the dialog fits: ${JSON.stringify(widths)}`);
  await axeCheck(page, "the access tokens dialog on a phone");
  await page.screenshot({ path: join(SHOTS, "tokens-phone-390x844.png") });
});

// ---- read state: unread and mention badges across tabs, the divider, search ----

/** The room list's button of `room`. */
function roomButton(page, room) {
  return page.locator(`#room-list button.room-open[data-room="${room}"]`);
}

/** Posts `body` to `room` as the user of `page` (through the API): the message's id. */
async function postAs(page, room, body) {
  const res = await pageApi(page, "POST", `/api/rooms/${room}/messages`, { body });
  assert.equal(res.status, 201, `posting to ${room}`);
  return res.body.message.id;
}

step("two tabs of one user: reading a room in one clears its badge in the other", async (t) => {
  const [quiet, busy] = [unique("quiet-"), unique("busy-")];
  const alice = await newUser(t, "rsa");
  const bob = await newUser(t, "rsb");
  await joinRoom(alice.page, busy);
  await joinRoom(alice.page, quiet);
  const tabB = await alice.context.newPage();
  tabB.setDefaultTimeout(WAIT);
  await tabB.goto("/");
  await waitLive(tabB);
  await roomButton(tabB, busy).waitFor();
  await postAs(bob.page, busy, "first news");
  await postAs(bob.page, busy, "second news");
  for (const page of [alice.page, tabB]) {
    await roomButton(page, busy).locator(".unread", { hasText: "2" }).waitFor();
    await page.waitForFunction(() => document.title === "(2) roomcast");
  }
  await axeCheck(tabB, "the room list with an unread badge");
  // Tab A reads the room: tab B's badge and title follow.
  await roomButton(alice.page, busy).click();
  await alice.page.locator("#messages .msg-body", { hasText: "second news" }).waitFor();
  await roomButton(tabB, busy).locator(".unread").waitFor({ state: "detached" });
  await tabB.waitForFunction(() => document.title === "roomcast");
  const list = await pageApi(tabB, "GET", "/api/me/rooms");
  const entry = list.body.rooms.find((r) => r.name === busy);
  assert.equal(entry.unread, 0, "the server's marker moved");
});

step("a mention in a room not on screen shows a mention badge; opening it shows the new-messages line", async (t) => {
  const [here, there] = [unique("here-"), unique("there-")];
  const alice = await newUser(t, "rma");
  const bob = await newUser(t, "rmb");
  await joinRoom(alice.page, there);
  await postAs(alice.page, there, "already read");
  await joinRoom(alice.page, here);
  await postAs(bob.page, there, "just chatting");
  await postAs(bob.page, there, `@${alice.name} look at this`);
  const button = roomButton(alice.page, there);
  await button.locator(".unread-mention").waitFor();
  await button.locator(".unread", { hasText: "2" }).waitFor();
  await button.click();
  const line = alice.page.locator("#messages li.msg .new-divider");
  await line.waitFor();
  assert.equal(await line.count(), 1, "one new-messages line");
  const first = alice.page.locator("#messages li.msg", { has: alice.page.locator(".new-divider") });
  assert.match(await first.locator(".msg-body").textContent(), /just chatting/, "above the first unread message");
  await axeCheck(alice.page, "a room with the new-messages line");
  await button.locator(".unread-mention").waitFor({ state: "detached" });
});

step("search, keyboard only: `/`, type, Enter, Tab to a result, Enter opens it in its room", async (t) => {
  const [old, now] = [unique("archive-"), unique("now-")];
  const alice = await newUser(t, "rsearch");
  await joinRoom(alice.page, old);
  const word = `zebra${unique("w")}`;
  const id = await postAs(alice.page, old, `the ${word}-crossing plan`);
  // Newer messages push it out of the room's latest page.
  await postMany(alice.page, old, 1, 70, 0);
  await joinRoom(alice.page, now);
  await alice.page.locator("#main").focus();
  await alice.page.keyboard.press("/");
  assert.equal(await focused(alice.page), "INPUT#search-q", "`/` goes to the search box");
  await alice.page.keyboard.type(word.slice(0, -2));
  await alice.page.keyboard.press("Enter");
  const hit = alice.page.locator("#search-list button.search-hit");
  await hit.first().waitFor();
  assert.equal(await hit.count(), 1, "one result");
  assert.match(await hit.locator(".hit-meta").textContent(), new RegExp(`#${old} · ${alice.name} · `));
  assert.equal(await hit.locator("mark").textContent(), word, "the matched word, whole, marked");
  await axeCheck(alice.page, "search results");
  const stops = [];
  while ((await focused(alice.page)) !== "BUTTON.search-hit") {
    assert.ok(stops.length < 10, `the result is reached with Tab: ${stops.join(" → ")}`);
    await alice.page.keyboard.press("Tab");
    stops.push(await focused(alice.page));
  }
  await alice.page.keyboard.press("Enter");
  await alice.page.waitForFunction((room) => window.roomcast.current === room, old);
  const li = alice.page.locator(`#messages li.msg[data-id="${id}"]`);
  await li.waitFor();
  await alice.page.waitForFunction((id) => document.activeElement?.dataset?.id === String(id), id);
  assert.ok(await li.isVisible(), "the message is in sight");
  await alice.page.screenshot({ path: join(SHOTS, "search-opened.png") });
});

step("settings: deleting one's account asks for the password, by keyboard; its messages then show as from a deleted user", async (t) => {
  const room = unique("leave-");
  const alice = await newUser(t, "alice");
  const bob = await newUser(t, "bob");
  await joinRoom(alice.page, room);
  await joinRoom(bob.page, room);
  await say(bob.page, "bye all");
  await message(alice.page, "bye all").waitFor();
  const page = bob.page;

  // Opened from the keyboard; the focus starts on the one action.
  await page.getByRole("button", { name: "Settings" }).focus();
  await page.keyboard.press("Enter");
  const dialog = page.getByRole("dialog", { name: "Settings" });
  await dialog.waitFor();
  assert.equal(await focused(page), "BUTTON#account-delete-start", "the focus starts on Delete my account…");
  await page.keyboard.press("Enter");
  assert.equal(await focused(page), "INPUT#account-delete-password", "the confirmation asks for the password");

  // Nothing typed, then a wrong password: refused next to the field, still logged in.
  await page.keyboard.press("Enter");
  await dialog.locator("#account-delete-error", { hasText: "Type your password" }).waitFor();
  await page.keyboard.type("not-my-password");
  await page.keyboard.press("Enter");
  await dialog.locator("#account-delete-error", { hasText: "not your password" }).waitFor();
  assert.equal(await dialog.locator("#account-delete-password").getAttribute("aria-invalid"), "true");
  assert.equal(new URL(page.url()).pathname, "/", "a wrong password leaves the page where it was");
  await axeCheck(page, "the settings dialog asking for the password");
  await page.screenshot({ path: join(SHOTS, "delete-account-desktop-1280x800.png") });

  // Cancel puts everything back, the focus on the button that opened the question.
  await dialog.getByRole("button", { name: "Cancel" }).focus();
  await page.keyboard.press("Enter");
  assert.equal(await focused(page), "BUTTON#account-delete-start", "focus back on Delete my account…");
  assert.equal(await dialog.locator("#account-delete-form").isHidden(), true, "the question is gone");

  // The right password: the account goes and the page says so on the login page.
  await page.keyboard.press("Enter");
  await page.keyboard.type(PASSWORD);
  await page.keyboard.press("Enter");
  await page.waitForURL(/\/login\?reason=account_deleted/);
  await page.locator("#login-notice", { hasText: "Your account is deleted" }).waitFor();
  const gone = await pageApi(alice.page, "GET", `/api/rooms/${room}/messages`);
  const kept = gone.body.messages.find((m) => m.body === "bye all");
  assert.ok(kept, "the message stays");
  assert.equal(kept.user.username, null, "its author has no name any more");

  // Alice, reading the room again, sees it from a deleted user.
  await alice.page.reload();
  await waitLive(alice.page);
  const msg = message(alice.page, "bye all");
  await msg.waitFor();
  await msg.locator(".deleted-user", { hasText: "deleted user" }).waitFor();
  await axeCheck(alice.page, "a message from a deleted user");
});

step("no script errors and no CSP violations on any page", () => {
  assert.deepEqual(problems, []);
});
