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
import net from "node:net";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const BIN = resolve(process.env.ROOMCAST_BIN || join(here, "..", "target", "debug", "roomcast"));
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const SHOTS = join(here, "screenshots");
const ADMIN_TOKEN = "e2e-admin-token-0123456789abcdef";
const PASSWORD = "correct horse battery";
const ROOM = "e2e-room";
const WAIT = 10_000;

const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 360, height: 740 };

let server; // child process
let serverLog; // path
let base; // http://127.0.0.1:PORT
let dataDir;
let browser;
const problems = []; // page errors and CSP violations seen by any page
let failed = false;

/** A test that records its failure (for printing the server log at the end). */
function step(name, fn) {
  test(name, { timeout: 90_000 }, async (t) => {
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

function freePort() {
  return new Promise((ok, fail) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", fail);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => ok(port));
    });
  });
}

function serverEnv(port) {
  return {
    ...process.env,
    ROOMCAST_ENVIRONMENT: "development",
    ROOMCAST__SERVER__HOST: "127.0.0.1",
    ROOMCAST__SERVER__PORT: String(port),
    ROOMCAST__SERVER__WORKERS: "2",
    ROOMCAST__SERVER__DATA_DIR: dataDir,
    ROOMCAST__DATABASE__URL: `sqlite://${dataDir}/rc.db?mode=rwc`,
    ROOMCAST__RATE_LIMIT__AUTH_PER_MIN: "1000",
    ROOMCAST__RATE_LIMIT__MESSAGES_PER_SEC: "1000",
    ROOMCAST__RATE_LIMIT__MESSAGES_BURST: "1000",
    ROOMCAST__ADMIN__API_TOKEN: ADMIN_TOKEN,
    ROOMCAST__SESSION__SECURE: "false",
    RUST_LOG: process.env.RUST_LOG || "info",
    NO_COLOR: "1",
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

async function waitHealthy(url, ms) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      const res = await fetch(`${url}/healthz`);
      if (res.ok) return;
    } catch {
      /* not up yet */
    }
    if (server.exitCode !== null) throw new Error(`server exited with ${server.exitCode}`);
    if (Date.now() > deadline) throw new Error("server did not become healthy");
    await new Promise((r) => setTimeout(r, 100));
  }
}

before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "roomcast-e2e-"));
  mkdirSync(SHOTS, { recursive: true });
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  const env = serverEnv(port);
  await cli(["user", "create", "boss", "--admin"], `${PASSWORD}\n`, env);
  serverLog = join(dataDir, "server.log");
  const log = createWriteStream(serverLog);
  // Run from the repository root, where static/ lives.
  server = spawn(BIN, ["serve"], { env, cwd: join(here, ".."), stdio: ["ignore", "pipe", "pipe"] });
  server.stdout.pipe(log);
  server.stderr.pipe(log);
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

async function newUserPage(viewport) {
  const context = await browser.newContext({ viewport, baseURL: base });
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

async function joinRoom(page, room) {
  await page.getByLabel("Join a room").fill(room);
  await page.getByLabel("Join a room").press("Enter");
  await page.locator(`#room-list button.room-open[aria-current="true"]`, { hasText: `#${room}` }).waitFor();
  // The page subscribed: the server shows us in the room's presence.
  await page.locator("#presence li.self").waitFor();
}

/** Types into the composer and presses Enter. */
async function say(page, text) {
  const box = page.locator("#composer-input");
  await box.fill(text);
  await box.press("Enter");
  await page.locator("#messages .msg-body").filter({ hasText: text }).last().waitFor();
}

/** [{id, user, body}] of the messages on screen, in DOM order. */
function shownMessages(page) {
  return page.$$eval("#messages li.msg", (lis) =>
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

/** Leaves `room` and opens `next`. */
async function leaveTo(page, room, next) {
  await page.getByRole("button", { name: `Leave #${room}` }).click();
  await page.waitForFunction((room) => window.roomcast.current !== room, room);
  await page.getByRole("button", { name: `#${next}`, exact: true }).click();
  await page.waitForFunction((next) => window.roomcast.current === next, next);
}

function assertAscendingUnique(msgs, what) {
  const ids = msgs.map((m) => m.id);
  assert.equal(new Set(ids).size, ids.length, `${what}: duplicate message ids ${ids}`);
  for (let i = 1; i < ids.length; i++) assert.ok(ids[i - 1] < ids[i], `${what}: ids out of order ${ids}`);
}

// ---------------------------------------------------------------------------------------
// Tests (they run in order and share the users below)

let alice; // desktop
let bob; // phone

step("logged-out visitors of / land on /login; bad form input shows errors by the field", async () => {
  const { context, page } = await newUserPage(DESKTOP);
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
  await context.close();
});

step("two users register, join a room, chat, see presence and typing", async () => {
  alice = await newUserPage(DESKTOP);
  bob = await newUserPage(PHONE);
  await registerViaForm(alice.page, "alice");
  await registerViaForm(bob.page, "bob");

  await joinRoom(alice.page, ROOM);
  await joinRoom(bob.page, ROOM);
  await waitPresence(alice.page, ["alice", "bob"]);
  await waitPresence(bob.page, ["alice", "bob"]);

  // Typing shows on the other side, then goes away on its own.
  await alice.page.locator("#composer-input").pressSequentially("hel", { delay: 30 });
  await bob.page.locator("#typing", { hasText: "alice is typing…" }).waitFor();
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
  assert.equal(last.user, "bob");

  for (const p of [alice.page, bob.page]) assertAscendingUnique(await shownMessages(p), "chat");
});

step("a <script> body shows as text and does not run", async () => {
  const evil = `<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"><b>bold</b>`;
  await say(alice.page, evil);
  const body = bob.page.locator("#messages .msg-body").filter({ hasText: "window.__pwned = 1" });
  await body.waitFor();
  assert.equal(await body.textContent(), evil);
  assert.equal(await bob.page.locator("#messages script, #messages img, #messages b").count(), 0);
  assert.equal(await bob.page.evaluate(() => window.__pwned), undefined);
  assert.equal(await alice.page.evaluate(() => window.__pwned), undefined);
});

step("offline and back: every missed message shows exactly once, in order", async (t) => {
  const before = await shownMessages(bob.page);
  const streamsBefore = await bob.page.evaluate(() => window.roomcast.streamsOpened);
  await bob.context.setOffline(true);
  // Cut the stream from the server side too, so the test does not depend on how the
  // browser treats an open stream when the network goes away.
  const res = await fetch(`${base}/api/admin/users/bob/disconnect`, {
    method: "POST",
    headers: { Authorization: `Bearer ${ADMIN_TOKEN}` },
  });
  assert.equal(res.status, 200);
  await bob.page.waitForFunction(() => document.getElementById("conn").dataset.state === "reconnecting");
  // Alice sees bob leave.
  await alice.page.waitForFunction(
    () => ![...document.querySelectorAll("#presence li")].some((li) => li.firstChild.textContent === "bob"),
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
  await waitPresence(alice.page, ["alice", "bob"]);
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
  const before = await shownMessages(bob.page);
  const streamsBefore = await bob.page.evaluate(() => window.roomcast.streamsOpened);
  // Every new stream now gets a 503: the browser's EventSource fails for good (CLOSED).
  await bob.page.route("**/api/events", (route) =>
    route.fulfill({ status: 503, contentType: "text/plain", body: "down for a moment" }),
  );
  const res = await fetch(`${base}/api/admin/users/bob/disconnect`, {
    method: "POST",
    headers: { Authorization: `Bearer ${ADMIN_TOKEN}` },
  });
  assert.equal(res.status, 200);
  await bob.page.waitForFunction(() => document.getElementById("conn").dataset.state === "reconnecting");
  const missed = [];
  for (let i = 1; i <= 3; i++) {
    const text = `while the stream was refused ${i}`;
    await say(alice.page, text);
    missed.push(text);
  }
  // The page notices the EventSource is closed and makes a new one (still refused) …
  await bob.page.waitForFunction((n) => window.roomcast.streamsOpened > n, streamsBefore, {
    timeout: 20_000,
  });
  // … then the server is back.
  await bob.page.unroute("**/api/events");
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
  assert.equal(resumedBy, "body", "a new EventSource resumes with last_event_id");
  t.diagnostic(`streams opened by the page: ${(await bob.page.evaluate(() => window.roomcast.streamsOpened)) - streamsBefore}`);
});

step("joined rooms survive a reload", async () => {
  await bob.page.reload();
  await waitLive(bob.page);
  await bob.page.locator(`#room-list button.room-open[aria-current="true"]`, { hasText: `#${ROOM}` }).waitFor();
  await bob.page.locator("#messages .msg-body", { hasText: "hello bob" }).waitFor();
  assertAscendingUnique(await shownMessages(bob.page), "after reload");
});

step("earlier history loads when scrolling up", async () => {
  const room = "history";
  await joinRoom(alice.page, room);
  // 70 messages through the API, from alice's page (same origin, her session).
  await alice.page.evaluate(async (room) => {
    for (let i = 1; i <= 70; i++) {
      const res = await fetch(`/api/rooms/${room}/messages`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ body: `h${i}` }),
      });
      if (res.status !== 201) throw new Error(`post ${i}: ${res.status}`);
    }
  }, room);
  await alice.page.locator("#messages .msg-body", { hasText: /^h70$/ }).waitFor();

  // Bob joins: he gets the latest page, then the rest on scrolling up.
  await joinRoom(bob.page, room);
  await bob.page.locator("#messages .msg-body", { hasText: /^h70$/ }).waitFor();
  const first = await shownMessages(bob.page);
  assert.ok(first.length >= 50 && first.length < 70, `a first page, got ${first.length}`);
  for (let i = 0; i < 10; i++) {
    await bob.page.locator("#scroller").evaluate((el) => {
      el.scrollTop = 0;
      el.dispatchEvent(new Event("scroll"));
    });
    if ((await bob.page.locator("#messages .msg-body", { hasText: /^h1$/ }).count()) > 0) break;
    await new Promise((r) => setTimeout(r, 300));
  }
  await bob.page.locator("#messages .msg-body", { hasText: /^h1$/ }).waitFor();
  const all = await shownMessages(bob.page);
  assertAscendingUnique(all, "history");
  assert.deepEqual(
    all.map((m) => m.body),
    Array.from({ length: 70 }, (_, i) => `h${i + 1}`),
  );
  await bob.page.locator("#history-start").waitFor();

  // Back to the first room, leave "history".
  await bob.page.getByRole("button", { name: "Leave #history" }).click();
  await bob.page.waitForFunction(() => window.roomcast.current !== "history");
  assert.equal(await bob.page.getByRole("button", { name: "Leave #history" }).count(), 0);
  await bob.page.getByRole("button", { name: `#${ROOM}`, exact: true }).click();
  await bob.page.waitForFunction((room) => window.roomcast.current === room, ROOM);
  await alice.page.getByRole("button", { name: `#${ROOM}`, exact: true }).click();
});

step("joining a busy room while someone posts: every message shows once, in order", async () => {
  const room = "busy";
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
  await leaveTo(bob.page, room, ROOM);
  await leaveTo(alice.page, room, ROOM);
});

step("leaving a room while its subscribe is on the way leaves no subscription behind", async () => {
  const room = "ghost";
  await bob.page.route("**/api/subscribe", async (route) => {
    await new Promise((r) => setTimeout(r, 500));
    await route.continue();
  });
  await bob.page.getByLabel("Join a room").fill(room);
  await bob.page.getByLabel("Join a room").press("Enter");
  await bob.page.getByRole("button", { name: `Leave #${room}` }).click();
  await new Promise((r) => setTimeout(r, 1500));
  await bob.page.unroute("**/api/subscribe");
  const presence = await alice.page.evaluate(async (room) => {
    const res = await fetch(`/api/rooms/${room}/presence`);
    return (await res.json()).users.map((u) => u.username);
  }, room);
  assert.ok(!presence.includes("bob"), `bob is not in #${room}: ${presence}`);
  // Bob still gets his room's messages: the stream is fine.
  await bob.page.getByRole("button", { name: `#${ROOM}`, exact: true }).click();
  await say(alice.page, "after the ghost");
  await bob.page.locator("#messages .msg-body", { hasText: "after the ghost" }).waitFor();
});

step("at most 100 rooms: a longer saved list is cut, the 101st join is refused", async () => {
  const carol = await newUserPage(DESKTOP);
  await registerViaForm(carol.page, "carol");
  const names = Array.from({ length: 150 }, (_, i) => `many-${String(i).padStart(3, "0")}`);
  await carol.page.evaluate((names) => {
    const id = document.getElementById("me").dataset.userId;
    localStorage.setItem(`roomcast.rooms.${id}`, JSON.stringify(names));
  }, names);
  await carol.page.reload();
  await waitLive(carol.page);
  // Stays live on its one stream (no refused subscribe, no reconnect loop).
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(await carol.page.evaluate(() => document.getElementById("conn").dataset.state), "live");
  assert.equal(await carol.page.evaluate(() => window.roomcast.streamsOpened), 1);
  assert.equal(await carol.page.locator("#room-list li").count(), 100);
  const presence = await carol.page.evaluate(async () => {
    const res = await fetch("/api/rooms/many-099/presence");
    return (await res.json()).users.map((u) => u.username);
  });
  assert.deepEqual(presence, ["carol"], "subscribed to the 100th room");

  const before = await carol.page.evaluate(() => window.roomcast.current);
  await carol.page.getByLabel("Join a room").fill("one-too-many");
  await carol.page.getByLabel("Join a room").press("Enter");
  await carol.page.locator("#join-error", { hasText: /at most 100 rooms/ }).waitFor();
  assert.equal(await carol.page.locator("#room-list li").count(), 100);
  assert.equal(await carol.page.evaluate(() => window.roomcast.current), before);
  assert.equal(await carol.page.getByLabel("Join a room").inputValue(), "one-too-many", "the name is kept");

  // Leaving one makes room for it.
  await carol.page.getByRole("button", { name: "Leave #many-000" }).click();
  assert.equal(await carol.page.locator("#join-error").textContent(), "");
  await joinRoom(carol.page, "one-too-many");
  assert.equal(await carol.page.locator("#room-list li").count(), 100);
  await carol.context.close();
});

step("a first room joined after a reconnect is subscribed and shows its messages", async () => {
  const dave = await newUserPage(DESKTOP);
  await registerViaForm(dave.page, "dave");
  // Dave sees one event (his own message), then leaves every room.
  await say(dave.page, "dave was here");
  await dave.page.waitForFunction(() => window.roomcast.lastSeenId > 0);
  await dave.page.getByRole("button", { name: "Leave #general" }).click();
  await dave.page.locator("#room-list li").first().waitFor({ state: "detached" });

  const res = await fetch(`${base}/api/admin/users/dave/disconnect`, {
    method: "POST",
    headers: { Authorization: `Bearer ${ADMIN_TOKEN}` },
  });
  assert.equal(res.status, 200);
  await dave.page.waitForFunction(() => document.getElementById("conn").dataset.state === "reconnecting");
  await say(alice.page, "while dave had no room");
  await waitLive(dave.page, 20_000);

  await joinRoom(dave.page, ROOM);
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
  assert.equal(await dave.page.evaluate(() => window.roomcast.resumedBy), "header");
  await dave.context.close();
});

step("an admin broadcasts; everyone sees the banner", async () => {
  const admin = await newUserPage(DESKTOP);
  await loginViaForm(admin.page, "boss");
  assert.equal(await alice.page.locator("#broadcast-form").count(), 0, "no broadcast box for users");
  await admin.page.getByText("Broadcast to everyone").click();
  await admin.page.getByLabel("Broadcast message").fill("Maintenance at 18:00 <b>UTC</b>");
  await admin.page.getByRole("button", { name: "Send broadcast" }).click();
  for (const p of [alice.page, bob.page, admin.page]) {
    await p.locator("#banner-text", { hasText: "Maintenance at 18:00 <b>UTC</b>" }).waitFor();
    assert.equal(await p.locator("#banner").isVisible(), true);
  }
  await admin.context.close();
});

step("screenshots of the chat at desktop and phone width", async () => {
  await say(alice.page, "Screenshot time: this is how the chat looks on a desktop.");
  await alice.page.locator("#composer-input").pressSequentially("typing", { delay: 20 });
  await bob.page.locator("#typing", { hasText: "alice is typing…" }).waitFor();
  await alice.page.screenshot({ path: join(SHOTS, "chat-desktop-1280x800.png") });
  await bob.page.screenshot({ path: join(SHOTS, "chat-phone-360x740.png") });

  // Nothing on the phone is wider than the screen.
  const overflow = await bob.page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(overflow <= PHONE.width, `page is ${overflow}px wide on a ${PHONE.width}px phone`);

  const login = await newUserPage(PHONE);
  await login.page.goto("/login");
  await login.page.screenshot({ path: join(SHOTS, "login-phone-360x740.png") });
  await login.context.close();
});

step("keyboard: focus is visible and the composer is reachable", async () => {
  const page = alice.page;
  await page.locator("#composer-input").fill("");
  await page.locator("#join-name").focus();
  await page.keyboard.press("Tab"); // the Join button
  const outline = await page.evaluate(() => {
    const el = document.activeElement;
    return { tag: el.tagName, style: getComputedStyle(el).outlineStyle };
  });
  assert.equal(outline.tag, "BUTTON");
  assert.notEqual(outline.style, "none", "focused control has an outline");
});

step("log out goes to /login and / is closed again", async () => {
  await alice.page.getByRole("button", { name: "Log out" }).click();
  await alice.page.waitForURL(`${base}/login`);
  await alice.page.goto("/");
  assert.equal(alice.page.url(), `${base}/login`);
});

step("no script errors and no CSP violations on any page", () => {
  assert.deepEqual(problems, []);
});
