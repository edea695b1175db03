// The dashboard end to end, in headless Chromium (Debian's chromium, driven by playwright-core),
// against a real `slipway serve` and a network-namespace test host. Run by
// crates/slipway/tests/e2e/dashboard.rs, which starts them and passes their addresses:
//   SLIPWAY_URL, SLIPWAY_SETUP_URL, TEST_HOST_ADDRESS, TEST_HOST_AUTHORIZED_KEYS (the host's
//   authorized_keys file for root), TEST_REPO_URL, SCREENSHOTS_DIR.
// Every page visited is checked: the CSP header, no console error (a CSP violation is one), no
// planted secret in its HTML, no serious or critical axe-core violation, no horizontal scrolling
// at 360 px; and it is photographed at desktop and phone width into SCREENSHOTS_DIR.
import { execFileSync } from "node:child_process";
import { createHmac } from "node:crypto";
import { appendFileSync, mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";

const require = createRequire(import.meta.url);
const axeSource = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const base = env("SLIPWAY_URL");
const shots = env("SCREENSHOTS_DIR");
mkdirSync(shots, { recursive: true });
const PASSWORD = "correct horse battery staple";
const OWNER = "owner@example.com";
const VIEWER = "viewer@example.com";

/** Values that must never appear in a page's HTML once planted. */
const secrets = new Set();
const problems = [];

function assert(condition, message) {
  if (!condition) throw new Error(message);
}

function step(text) {
  console.log(`[${new Date().toISOString().slice(11, 19)}] ${text}`);
}

// RFC 6238 code for a base32 secret at a given time (what an authenticator app shows).
function totp(secret, unixSeconds) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const c of secret.replace(/=+$/, "").toUpperCase()) bits += alphabet.indexOf(c).toString(2).padStart(5, "0");
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(unixSeconds / 30)));
  const mac = createHmac("sha1", key).update(counter).digest();
  const offset = mac[mac.length - 1] & 15;
  return String((mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000).padStart(6, "0");
}

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
  ],
});

async function newPage() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  current = page;
  page.setDefaultTimeout(30_000);
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`console error on ${page.url()}: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`script error on ${page.url()}: ${e.message}`));
  return { context, page };
}

/** The checks every page gets, and its two screenshots. */
async function check(page, name, { secretsAllowed = false } = {}) {
  const html = await page.content();
  if (!secretsAllowed) {
    for (const s of secrets) assert(!html.includes(s), `${name}: a planted secret is in the page`);
  }
  await page.evaluate(axeSource);
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ["violations"] }));
  const bad = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  assert(
    bad.length === 0,
    `${name}: accessibility: ${JSON.stringify(bad.map((v) => [v.id, v.help, v.nodes.slice(0, 3).map((n) => n.target)]))}`,
  );
  await page.screenshot({ path: `${shots}/${name}-desktop.png`, fullPage: true });
  await page.setViewportSize({ width: 360, height: 740 });
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  await page.screenshot({ path: `${shots}/${name}-phone.png`, fullPage: true });
  await page.setViewportSize({ width: 1280, height: 800 });
  assert(width <= 361, `${name}: ${width} px wide on a 360 px screen`);
}

async function visit(page, path) {
  const response = await page.goto(base + path);
  const csp = response.headers()["content-security-policy"] || "";
  assert(csp.includes("default-src 'self'") && csp.includes("frame-ancestors 'none'"), `${path}: CSP missing (${csp})`);
  return response;
}

/** Clicks the button (or link) with exactly this name, as a user would find it. */
async function press(page, name, role = "button") {
  await page.getByRole(role, { name, exact: true }).click();
}

async function text(page, selector) {
  return (await page.locator(selector).first().textContent()).trim();
}

async function api(method, path, token, body) {
  const headers = { "content-type": "application/json", accept: "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch(base + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = response.status === 204 ? null : await response.json().catch(() => null);
  return { status: response.status, json };
}

async function login(page, email, otp = "") {
  await visit(page, "/login");
  await page.fill("#email", email);
  await page.fill("#password", PASSWORD);
  await page.fill("#otp", otp);
  await press(page, "Log in");
}

/** Reloads a page (which does not update itself) until `ready` holds of it. */
async function reloadUntil(page, what, ready, seconds) {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    if (await ready()) return;
    assert(Date.now() < deadline, `${what}: not within ${seconds} s`);
    await page.waitForTimeout(2000);
    await page.reload();
  }
}

/** Waits for a status element to read one of `wanted`, while the page updates itself. */
async function waitStatus(page, selector, wanted, seconds) {
  await page.waitForFunction(
    ([sel, list]) => list.includes(document.querySelector(sel)?.textContent.trim()),
    [selector, wanted],
    { timeout: seconds * 1000 },
  );
  return text(page, selector);
}

let current = null;
async function run() {
  const { context, page } = await newPage();

  step("first-owner setup");
  await page.goto(env("SLIPWAY_SETUP_URL"));
  await page.fill("input[name=name]", "Olivia Owner");
  await page.fill("input[name=email]", OWNER);
  await page.fill("input[name=password]", PASSWORD);
  await page.fill("input[name=organization]", "Agency");
  await page.click("button[type=submit]");
  await page.getByText("Slipway is ready").waitFor();
  const ownerToken = await text(page, "code");
  assert(ownerToken.startsWith("slp_"), `setup shows the owner's API token (${ownerToken})`);
  await check(page, "setup-done", { secretsAllowed: true });
  secrets.add(ownerToken);

  step("login, no two-factor yet");
  await press(page, "Log in to the dashboard", "link");
  await page.waitForURL("**/login");
  await check(page, "login");
  await page.fill("#email", OWNER);
  await page.fill("#password", "wrong password, surely");
  await press(page, "Log in");
  await page.locator("#email-error").waitFor();
  assert((await text(page, "#email-error")).includes("do not match"), "a wrong password is said next to the field");
  await login(page, OWNER);
  await page.waitForURL(base + "/");
  await page.getByText("No servers yet").waitFor();
  await check(page, "home-empty");

  step("two-factor enrolment");
  await visit(page, "/account");
  await check(page, "account");
  await page.fill("#password", PASSWORD);
  await press(page, "Set up two-factor");
  await page.locator(".qr svg").waitFor();
  const key = await text(page, "main p code");
  await check(page, "account-two-factor-qr", { secretsAllowed: true });
  await page.fill("#code", totp(key, Date.now() / 1000));
  await press(page, "Turn two-factor on");
  await page.locator("#recovery-codes").waitFor();
  secrets.add(key);

  step("logout ends the session on the server");
  const session = (await context.cookies()).find((c) => c.name === "slipway_session");
  assert(session.httpOnly && session.sameSite === "Lax" && !session.secure, `cookie flags: ${JSON.stringify(session)}`);
  secrets.add(session.value);
  await press(page, "Log out");
  await page.waitForURL("**/login?ended=out");
  assert(!(await context.cookies()).some((c) => c.name === "slipway_session"), "the browser forgets the session");
  const replay = await fetch(base + "/", { headers: { cookie: `slipway_session=${session.value}` }, redirect: "manual" });
  assert(replay.status === 303 && replay.headers.get("location").startsWith("/login"), "the old cookie is refused");

  step("login with two-factor");
  await login(page, OWNER, "000000");
  await page.locator("#otp-error").waitFor();
  await login(page, OWNER, totp(key, Date.now() / 1000 + 30));
  await page.waitForURL(base + "/");
  for (const c of await context.cookies()) if (c.name === "slipway_session") secrets.add(c.value);

  step("an access token: created, shown once, used, revoked");
  await visit(page, "/tokens");
  await check(page, "tokens");
  await page.fill("#token-name", "ci deploys");
  for (const ability of ["server:read", "site:read", "site:deploy"]) await page.check(`[id="ability-${ability}"]`);
  await press(page, "Create the token");
  await page.waitForURL("**/tokens/created");
  const secret = await text(page, "#new-token");
  assert(secret.startsWith("slp_"), "the new token's secret is shown");
  await check(page, "token-created", { secretsAllowed: true });
  secrets.add(secret);
  await page.reload();
  assert((await page.locator("#new-token").count()) === 0, "a reload does not show the secret again");
  assert((await page.content()).includes("shown once"), "the page says why");
  let used = await api("GET", "/api/v1/servers", secret);
  assert(used.status === 200, `the new token works (${used.status})`);
  const currentToken = await api("GET", "/api/v1/tokens/current", secret);
  assert(currentToken.json.data.expires_at === null, "a token made in the dashboard does not end with the session");
  await visit(page, "/tokens");
  await press(page, "Revoke ci deploys");
  await page.waitForURL("**/tokens");
  used = await api("GET", "/api/v1/servers", secret);
  assert(used.status === 401, `the revoked token is refused (${used.status})`);

  step("forms without the right CSRF value are refused");
  let forced = await page.request.post(base + "/tokens", { form: { name: "forged" } });
  assert(forced.status() === 403, `no CSRF value: ${forced.status()}`);
  forced = await page.request.post(base + "/tokens", { form: { name: "forged", csrf: "0".repeat(64) } });
  assert(forced.status() === 403, `a wrong CSRF value: ${forced.status()}`);

  step("a server: registered, authorised, verified and provisioned with the live log");
  await visit(page, "/servers");
  await check(page, "servers-empty");
  await press(page, "Add a server", "link");
  await check(page, "server-new");
  await page.fill("#name", "web-1");
  await page.fill("#ip_address", env("TEST_HOST_ADDRESS"));
  // The test host's MariaDB is this machine's own (it shares the file system), which
  // provisioning finds running and takes as installed.
  await page.selectOption("#database_type", "mariadb");
  await press(page, "Add the server");
  await page.locator("#authorization-command").waitFor();
  const serverUrl = new URL(page.url()).pathname;
  const command = await text(page, "#authorization-command");
  const publicKey = command.match(/ssh-ed25519 [A-Za-z0-9+/=]+/)[0];
  // What running the command does on the server (here, the test host's root keys file).
  appendFileSync(env("TEST_HOST_AUTHORIZED_KEYS"), `${publicKey}\n`);
  await check(page, "server-new-authorise");
  await press(page, "Verify the connection");
  await page.waitForURL("**/operations/**");
  assert((await waitStatus(page, "#operation-status", ["succeeded", "failed"], 60)) === "succeeded", "verify succeeds");
  await visit(page, serverUrl);
  await press(page, "Provision");
  await page.waitForURL("**/operations/**");
  await page.evaluate(() => { window.stillTheSamePage = true; });
  const provisioned = await waitStatus(page, "#operation-status", ["succeeded", "failed"], 300);
  assert(provisioned === "succeeded", `provisioning: ${provisioned}: ${await page.locator("#operation-failure").textContent()}`);
  assert(await page.evaluate(() => window.stillTheSamePage === true), "the log updated without a reload");
  assert((await page.locator("#log .line").count()) > 5, "the provisioning log is shown");
  await check(page, "operation-provision");

  step("a site: created, deployed with the live log, deployed again, rolled back");
  await visit(page, serverUrl);
  await check(page, "server");
  await press(page, "Add a site", "link");
  await check(page, "site-new");
  await page.fill("#domain", "shop.test");
  await page.selectOption("#project_type", "static");
  await page.fill("#repository_url", env("TEST_REPO_URL"));
  await press(page, "Add the site");
  await page.waitForURL("**/sites/**");
  const siteUrl = new URL(page.url()).pathname;
  // The page updates itself once the installation is done.
  await page.locator(".status-installed").first().waitFor({ timeout: 60_000 });
  async function deployAndWait(button) {
    await press(page, button);
    await page.waitForURL("**/deployments/**");
    await page.evaluate(() => { window.stillTheSamePage = true; });
    const status = await waitStatus(page, "#deployment-status", ["succeeded", "failed", "cancelled"], 180);
    assert(status === "succeeded", `deployment ${status}: ${await page.locator("#deployment-failure").textContent()}`);
    assert(await page.evaluate(() => window.stillTheSamePage === true), "the deployment log updated without a reload");
    assert((await page.locator("#steps .step-succeeded").count()) >= 4, "each step is listed as it ran");
    assert((await page.locator("#log .line").count()) > 0, "the deployment log is shown");
  }
  await deployAndWait("Deploy now");
  await check(page, "deployment");
  await visit(page, siteUrl);
  await deployAndWait("Deploy now");
  await visit(page, siteUrl);
  await check(page, "site");
  await deployAndWait("Roll back to this release");
  assert((await page.content()).includes("rollback"), "the rollback is a deployment of its own");

  step("an environment variable: set, masked, revealed on purpose");
  const planted = `planted-env-${Math.random().toString(36).slice(2)}`;
  secrets.add(planted);
  await visit(page, siteUrl);
  await page.fill("#env-key", "API_SECRET");
  await page.fill("#env-value", planted);
  await press(page, "Save the variable");
  await page.locator("code:text-is('API_SECRET')").waitFor();
  assert((await page.content()).includes("hidden"), "its value is masked");
  await check(page, "site-environment");
  await press(page, "Reveal the values", "link");
  assert((await page.content()).includes(planted), "an owner can reveal it");

  step("a redirect added from the site's page");
  await visit(page, siteUrl);
  await press(page, "Add a redirect", "link");
  await check(page, "item-new");
  await page.fill("#from", "/old-page");
  await page.fill("#to", "/");
  await press(page, "Add");
  await page.waitForURL(base + siteUrl);
  await page.locator("td:text-is('/old-page → /')").waitFor();

  step("a database and a user from the dashboard: the password shown once works, both deleted");
  const suffix = Math.random().toString(36).slice(2, 8);
  const dbName = `e2e_${suffix}`;
  const dbUser = `e2e_user_${suffix}`;
  await visit(page, serverUrl);
  await press(page, "Add a database", "link");
  await check(page, "database-new");
  await page.fill("#name", dbName);
  await press(page, "Add");
  await page.waitForURL(base + serverUrl);
  await press(page, dbName, "link");
  await page.waitForURL("**/databases/**");
  const databaseUrl = new URL(page.url()).pathname;
  await reloadUntil(page, "the database is made", async () => (await page.locator("dd .status-active").count()) === 1, 60);
  await press(page, "Add a user", "link");
  await page.fill("#name", dbUser);
  await page.selectOption("#access", "read_only");
  await press(page, "Add");
  await page.waitForURL("**/shown-once");
  const dbPassword = await text(page, "#new-secret");
  secrets.add(dbPassword);
  await check(page, "database-user-password", { secretsAllowed: true });
  await page.reload();
  assert((await page.locator("#new-secret").count()) === 0, "a reload does not show the password again");
  await visit(page, databaseUrl);
  await reloadUntil(page, "the user is made", async () => (await page.locator("td .status-active").count()) === 1, 60);
  await check(page, "database");
  // The password is the user's on the real engine, with the access picked.
  const asUser = (sql) => execFileSync("mysql", ["--protocol=tcp", "-h127.0.0.1", `-u${dbUser}`, `-p${dbPassword}`, "-N", "-B", "-e", sql, dbName], { encoding: "utf8" }).trim();
  assert(asUser("SELECT 1") === "1", "the shown password logs in");
  let writeRefused = false;
  try { asUser("CREATE TABLE t (id INT)"); } catch { writeRefused = true; }
  assert(writeRefused, "a read-only user cannot write");
  await press(page, `Delete ${dbUser}`);
  await page.waitForURL(base + databaseUrl);
  await reloadUntil(page, "the user is gone", async () => (await page.locator(`td:text-is('${dbUser}')`).count()) === 0, 60);
  await visit(page, serverUrl);
  await page.getByLabel(`Type ${dbName} to delete it`).fill(dbName);
  await press(page, `Delete ${dbName}`);
  await page.waitForURL(base + serverUrl);
  await reloadUntil(page, "the database is gone", async () => (await page.locator(`a:text-is('${dbName}')`).count()) === 0, 60);

  step("integrations: a backup storage on the server, tested; a notification channel, its secret shown once");
  await visit(page, "/integrations");
  await check(page, "integrations-empty");
  await press(page, "Add a backup storage", "link");
  await check(page, "backup-storage-new");
  await page.fill("#name", "On the server");
  await page.selectOption("#kind", "local");
  await page.selectOption("#server_id", { label: "web-1" });
  await page.fill("#path", "/var/backups/slipway-e2e");
  await press(page, "Add");
  await page.waitForURL(base + "/integrations");
  await press(page, "Test: On the server");
  await page.locator(".notice").first().waitFor();
  assert((await text(page, ".notice")) === "It worked.", `the storage test: ${await page.locator("main").textContent()}`);
  assert((await text(page, "h1")) === "Test: On the server", "the result names the storage");
  assert((await page.locator("dd:text-is('write: passed')").count()) === 1, "each step of the test is listed");
  await check(page, "backup-storage-test");
  await visit(page, "/integrations");
  await press(page, "Add a notification channel", "link");
  const hook = `https://hooks.example.com/e2e-${suffix}`;
  secrets.add(hook);
  await page.fill("#name", "On call");
  await page.selectOption("#kind", "webhook");
  await page.fill("#url", hook);
  await press(page, "Add");
  await page.waitForURL("**/shown-once");
  secrets.add(await text(page, "#new-secret"));
  await visit(page, "/integrations");
  await press(page, "Change On call", "link");
  await check(page, "item-edit");
  await page.fill("#name", "Night shift");
  await press(page, "Save");
  await page.waitForURL(base + "/integrations");
  await page.locator("td:text-is('Night shift')").waitFor();
  await check(page, "integrations");

  step("suspend and resume");
  await visit(page, siteUrl);
  // Each change is work on the server: the dashboard follows it until nginx has it.
  async function siteChange(button, what) {
    await press(page, button);
    await page.waitForURL("**/operations/**");
    const status = await waitStatus(page, "#operation-status", ["succeeded", "failed"], 60);
    assert(status === "succeeded", `${what}: ${status}: ${await page.locator("#operation-failure").textContent()}`);
    await press(page, "Back to the site", "link");
    await page.waitForURL(base + siteUrl);
  }
  await siteChange("Suspend the site", "suspending");
  assert((await page.content()).includes("status-suspended"), "the site shows as suspended");
  await siteChange("Resume the site", "resuming");
  await page.getByRole("button", { name: "Suspend the site", exact: true }).waitFor();

  step("a viewer sees no deploy button, and a forced deploy is refused");
  let r = await api("POST", "/api/v1/register", null, { email: VIEWER, name: "Vic Viewer", password: PASSWORD });
  assert(r.status === 201, `register: ${r.status} ${JSON.stringify(r.json)}`);
  const me = await api("GET", "/api/v1/user", ownerToken);
  const org = me.json.data.organizations[0].id;
  r = await api("POST", `/api/v1/organizations/${org}/members`, ownerToken, { email: VIEWER, role: "viewer" });
  assert(r.status === 201, `add member: ${r.status} ${JSON.stringify(r.json)}`);
  const viewer = await newPage();
  await login(viewer.page, VIEWER);
  await viewer.page.waitForURL(base + "/");
  await visit(viewer.page, siteUrl);
  assert((await viewer.page.getByRole("button", { name: "Deploy now" }).count()) === 0, "a viewer sees no deploy button");
  assert((await viewer.page.getByRole("button", { name: /Roll back/ }).count()) === 0, "nor a rollback button");
  await check(viewer.page, "site-viewer");
  const viewerCsrf = await viewer.page.locator("input[name=csrf]").first().getAttribute("value");
  forced = await viewer.page.request.post(base + siteUrl + "/deploy", { form: { csrf: viewerCsrf }, maxRedirects: 0 });
  assert(forced.status() === 403, `a forced deploy by a viewer: ${forced.status()}`);
  await viewer.context.close();
  current = page;

  step("the rest of the pages");
  await visit(page, "/");
  await check(page, "home");
  await visit(page, "/servers");
  await check(page, "servers");
  await visit(page, "/sites");
  await check(page, "sites");
  await visit(page, "/organization?action=site.deploy");
  assert((await page.locator("td code:text-is('site.deploy')").count()) >= 2, "dashboard deploys are in the audit log");
  await check(page, "organization");

  step("logout");
  await press(page, "Log out");
  await page.waitForURL("**/login?ended=out");
  await browser.close();
}

try {
  await run();
} catch (error) {
  // What the browser showed when it failed: its address, its text and a screenshot.
  if (current) {
    console.error(`failed on ${current.url()}`);
    console.error((await current.locator("main").textContent().catch(() => "")).slice(0, 2000));
    await current.screenshot({ path: `${shots}/failure.png`, fullPage: true }).catch(() => {});
  }
  console.error(problems.join("\n"));
  throw error;
}
assert(problems.length === 0, `browser errors:\n${problems.join("\n")}`);
step("all checks passed");
