// The real stack for the browser tests: the three binaries from target/debug (cargo build
// --workspace --bins), the gateway serving web/dist, on SQLite in a temporary directory or on
// a PostgreSQL database of their own (created here, dropped after).
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, createWriteStream } from "node:fs";
import { createServer, connect } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { randomBytes } from "node:crypto";

export const ROOT = resolve(import.meta.dirname, "../..");
const BIN = join(ROOT, "target", "debug");
export const ALL_SCOPES = "notifications:send notifications:broadcast notifications:send_as notifications:critical";

export async function freePort() {
  return new Promise((ok, fail) => {
    const server = createServer();
    server.unref();
    server.on("error", fail);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => ok(port));
    });
  });
}

async function waitForPort(port, child, what) {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${what} exited with ${child.exitCode} (log: ${child.logFile})`);
    const up = await new Promise((ok) => {
      const socket = connect(port, "127.0.0.1");
      socket.once("connect", () => { socket.destroy(); ok(true); });
      socket.once("error", () => ok(false));
    });
    if (up) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} did not listen on ${port} within 30 s`);
}

function psql(sql) {
  execFileSync("psql", ["-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-v", "ON_ERROR_STOP=1", "-qc", sql], { stdio: "pipe" });
}

export class Stack {
  /** @param {"sqlite" | "postgres"} backend */
  constructor(backend) {
    this.backend = backend;
    this.dir = mkdtempSync(join(tmpdir(), `switchboard-e2e-${backend}-`));
    this.internalToken = randomBytes(24).toString("hex");
    this.jwtSecret = randomBytes(24).toString("hex");
    this.children = new Map();
    this.databases = [];
  }

  get url() {
    return `http://127.0.0.1:${this.gatewayPort}`;
  }

  databaseUrl(name) {
    if (this.backend === "sqlite") return `sqlite:${join(this.dir, `${name}.db`)}`;
    const db = `switchboard_e2e_${name}_${process.pid}_${Date.now()}`;
    psql(`CREATE DATABASE ${db}`);
    this.databases.push(db);
    return `postgres://postgres@127.0.0.1:5432/${db}`;
  }

  async start() {
    [this.notificationPort, this.conversationPort, this.gatewayPort] = await Promise.all([freePort(), freePort(), freePort()]);
    this.notificationDb = this.databaseUrl("notifications");
    this.conversationDb = this.databaseUrl("conversations");
    await this.startNotification();
    await this.run("conversation-svc", [
      "--listen", `127.0.0.1:${this.conversationPort}`,
      "--database-url", this.conversationDb,
      "--notification-addr", `http://127.0.0.1:${this.notificationPort}`,
    ], this.conversationPort);
    await this.run("gateway", [
      "--listen", `127.0.0.1:${this.gatewayPort}`,
      "--notification-addr", `http://127.0.0.1:${this.notificationPort}`,
      "--conversation-addr", `http://127.0.0.1:${this.conversationPort}`,
      "--jwt-secret", this.jwtSecret,
      "--web-dir", join(ROOT, "web", "dist"),
      "--health-interval", "500ms",
      // The tests send a few hundred calls in seconds; the per-user limit is tested in Rust.
      "--send-rate", "1000",
      "--send-burst", "1000",
      "--shutdown-grace", "1s",
    ], this.gatewayPort);
  }

  startNotification() {
    return this.run("notification-svc", [
      "--listen", `127.0.0.1:${this.notificationPort}`,
      "--database-url", this.notificationDb,
      "--heartbeat-interval", "2s",
      "--shutdown-grace", "1s",
    ], this.notificationPort);
  }

  /** SIGTERM and wait for the exit (its streams end: browsers see the drop). */
  async stopNotification() {
    await this.kill("notification-svc");
  }

  async run(name, args, port) {
    const logFile = join(this.dir, `${name}.log`);
    const child = spawn(join(BIN, name), args, {
      env: { ...process.env, SWITCHBOARD_INTERNAL_TOKEN: this.internalToken, RUST_LOG: process.env.RUST_LOG ?? "info" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const log = createWriteStream(logFile, { flags: "a" });
    child.stdout.pipe(log);
    child.stderr.pipe(log);
    child.logFile = logFile;
    this.children.set(name, child);
    await waitForPort(port, child, name);
  }

  async kill(name) {
    const child = this.children.get(name);
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((ok) => child.once("exit", ok));
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
    await exited;
    clearTimeout(timer);
  }

  /** A token from `devstack token`, as a person would mint one. */
  token(user, { scopes = "", ttl = "1h" } = {}) {
    return execFileSync(join(BIN, "devstack"), ["token", "--jwt-secret", this.jwtSecret, "--user", user, "--scopes", scopes, "--ttl", ttl], {
      encoding: "utf8",
    }).trim();
  }

  /** One call through the gateway with grpcurl (the way a backend service would send). */
  grpcurl(token, method, body) {
    const out = execFileSync("grpcurl", [
      "-plaintext",
      "-import-path", join(ROOT, "proto"),
      "-proto", "switchboard/notification/v1/notification_service.proto",
      "-proto", "switchboard/conversation/v1/conversation_service.proto",
      "-H", `authorization: Bearer ${token}`,
      "-d", JSON.stringify(body),
      `127.0.0.1:${this.gatewayPort}`,
      method,
    ], { encoding: "utf8" });
    return JSON.parse(out || "{}");
  }

  async stop() {
    for (const name of ["gateway", "conversation-svc", "notification-svc"]) await this.kill(name);
    for (const db of this.databases) psql(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
    if (process.env.KEEP_E2E_DIR) console.log(`logs kept in ${this.dir}`);
    else rmSync(this.dir, { recursive: true, force: true });
  }
}
