/**
 * A TCP proxy inside the test process that stands between the CLI and PostgreSQL and can drop
 * connections at any moment: all of them (the network went away) or one (a pooler or the server
 * ended one session). Dropping is a reset on both sides, so the server aborts what it was doing
 * for that session, exactly as when a link fails mid-statement.
 *
 * It can also turn into a black hole (a firewall silently dropping packets, a failed-over host):
 * it stops forwarding without closing either side, discarding what arrives, and new connections
 * are accepted but never reach the server. Nothing tells either end that anything is wrong; only
 * the client's own deadlines can. heal() later closes what was held (as the server's keepalive
 * eventually would) and forwards new connections again.
 */
import net from "node:net";
import type { Random } from "./random.js";

interface Pair {
  client: net.Socket;
  /** Absent for a connection accepted while the proxy was a black hole. */
  upstream: net.Socket | undefined;
}

export class CuttableProxy {
  readonly #server: net.Server;
  readonly #pairs = new Set<Pair>();
  readonly #swallowed = new Set<Pair>();
  #blackHole = false;
  connectionsSeen = 0;
  connectionsCut = 0;
  connectionsSwallowed = 0;

  private constructor(server: net.Server) {
    this.#server = server;
  }

  static async start(target: { host: string; port: number }): Promise<CuttableProxy> {
    // Half-open allowed: a silenced connection must not answer the CLI's goodbye with one of its
    // own, so that the CLI's bounded close is what ends it, as behind a real partition.
    const server = net.createServer({ allowHalfOpen: true });
    const proxy = new CuttableProxy(server);
    server.on("connection", (client) => proxy.#accept(client, target));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => resolve());
    });
    return proxy;
  }

  get port(): number {
    return (this.#server.address() as net.AddressInfo).port;
  }

  /** The same URL, pointed at the proxy. */
  urlFor(url: string): string {
    const parsed = new URL(url);
    parsed.hostname = "127.0.0.1";
    parsed.port = String(this.port);
    return parsed.toString();
  }

  openConnections(): number {
    return this.#pairs.size;
  }

  /** Drops every open connection; returns how many there were. */
  cutAll(): number {
    const pairs = [...this.#pairs];
    for (const pair of pairs) this.#drop(pair);
    return pairs.length;
  }

  /** Drops one open connection, chosen at random; returns 1, or 0 when none was open. */
  cutOne(random: Random): number {
    const pairs = [...this.#pairs];
    if (pairs.length === 0) return 0;
    this.#drop(random.pick(pairs));
    return 1;
  }

  /** Local ports of the proxy's upstream sockets: PostgreSQL's pg_stat_activity.client_port. */
  upstreamPorts(): number[] {
    return [...this.#pairs].map((pair) => pair.upstream?.localPort ?? -1);
  }

  /** Drops the connection whose upstream socket has this local port; returns 1, or 0 if none. */
  cutByUpstreamPort(port: number): number {
    const pair = this.#byUpstreamPort(port);
    if (pair === undefined) return 0;
    this.#drop(pair);
    return 1;
  }

  /** Every connection, open and new, goes silent; returns how many open ones were swallowed. */
  blackHoleAll(): number {
    this.#blackHole = true;
    const pairs = [...this.#pairs];
    for (const pair of pairs) this.#swallow(pair);
    return pairs.length;
  }

  /** The connection whose upstream socket has this local port goes silent; returns 1 or 0. */
  blackHoleByUpstreamPort(port: number): number {
    const pair = this.#byUpstreamPort(port);
    if (pair === undefined) return 0;
    this.#swallow(pair);
    return 1;
  }

  /** Closes every silenced connection and forwards new ones again; returns how many it closed. */
  heal(): number {
    this.#blackHole = false;
    const swallowed = [...this.#swallowed];
    this.#swallowed.clear();
    for (const pair of swallowed) {
      pair.client.destroy();
      pair.upstream?.destroy();
    }
    return swallowed.length;
  }

  async close(): Promise<void> {
    this.cutAll();
    this.heal();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #accept(client: net.Socket, target: { host: string; port: number }): void {
    this.connectionsSeen++;
    if (this.#blackHole) {
      const pair: Pair = { client, upstream: undefined };
      this.#swallowed.add(pair);
      this.connectionsSwallowed++;
      client.on("error", () => undefined);
      client.on("data", () => undefined);
      return;
    }
    const upstream = net.connect(target.port, target.host);
    const pair: Pair = { client, upstream };
    this.#pairs.add(pair);
    const end = () => {
      if (!this.#pairs.delete(pair)) return;
      client.destroy();
      upstream.destroy();
    };
    client.on("error", end);
    upstream.on("error", end);
    client.on("close", end);
    upstream.on("close", end);
    client.pipe(upstream);
    upstream.pipe(client);
  }

  #drop(pair: Pair): void {
    if (!this.#pairs.delete(pair)) return;
    this.connectionsCut++;
    pair.client.resetAndDestroy();
    pair.upstream?.resetAndDestroy();
  }

  /** Stops forwarding both ways and discards whatever arrives, leaving both sockets open. */
  #swallow(pair: Pair): void {
    if (!this.#pairs.delete(pair)) return;
    this.#swallowed.add(pair);
    this.connectionsSwallowed++;
    const { client, upstream } = pair;
    client.unpipe();
    upstream?.unpipe();
    client.removeAllListeners("close");
    upstream?.removeAllListeners("close");
    client.on("data", () => undefined);
    upstream?.on("data", () => undefined);
  }

  #byUpstreamPort(port: number): Pair | undefined {
    return [...this.#pairs].find((candidate) => candidate.upstream?.localPort === port);
  }
}
