// PTI, AMBROSIA's throughput benchmark: a client (AMBROSIA's "Job") streams fire-and-forget forks carrying byte
// payloads to a server, round by round. The server checks every call number arrives once and in order.
import { defineApp, defineImmortal } from "@immortal/sdk";

function envNum(name: string, dflt: number | undefined): number | undefined {
  const v = process.env[name];
  return v === undefined || v === "" ? dflt : Number(v);
}

const MIB = 1024 * 1024;
/** Options, read once at module load (see README). */
export const OPTIONS = {
  rounds: envNum("PTI_ROUNDS", 3)!,
  bytesPerRound: envNum("PTI_BYTES_PER_ROUND", 8 * MIB)!,
  maxSize: envNum("PTI_MAX_SIZE", 65536)!,
  fixedSize: envNum("PTI_FIXED_SIZE", undefined),
  randomSeed: envNum("PTI_RANDOM_SEED", undefined),
  echo: (process.env.PTI_ECHO ?? "") !== "" && process.env.PTI_ECHO !== "0",
  statePaddingMb: envNum("PTI_STATE_PADDING_MB", 0)!,
  stepBytes: envNum("PTI_STEP_BYTES", 10 * MIB)!,
  clients: envNum("PTI_CLIENTS", 1)!,
  report: (process.env.PTI_REPORT ?? "") !== "" && process.env.PTI_REPORT !== "0",
};

/** The client instances: `client`, or `client-0` .. `client-{N-1}` with `PTI_CLIENTS=N` (N > 1). */
export const CLIENTS =
  OPTIONS.clients > 1 ? Array.from({ length: OPTIONS.clients }, (_, i) => `client-${i}`) : ["client"];

export const MIN_SIZE = 16;

/** The message size of a round when sizes are not random. */
export function roundSize(round: number): number {
  if (OPTIONS.fixedSize !== undefined) return Math.max(MIN_SIZE, OPTIONS.fixedSize);
  return Math.max(MIN_SIZE, Math.floor(OPTIONS.maxSize / 2 ** round));
}

/** Messages in a round of fixed-size messages: floor(bytes / size), at least one. */
export function roundMessages(round: number): number {
  return Math.max(1, Math.floor(OPTIONS.bytesPerRound / roundSize(round)));
}

/** mulberry32 step: returns [value in [0,1), next seed]. Its seed lives in the state, so replay is exact. */
function prngNext(seed: number): [number, number] {
  const a = (seed + 0x6d2b79f5) >>> 0;
  let t = Math.imul(a ^ (a >>> 15), a | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return [((t ^ (t >>> 14)) >>> 0) / 4294967296, a];
}

/** The uint64 LE call number in a payload's first 8 bytes (read as two uint32 halves: no DataView, no BigInt). */
function callNumber(p: Uint8Array): number {
  const lo = (p[0]! | (p[1]! << 8) | (p[2]! << 16) | (p[3]! << 24)) >>> 0;
  const hi = (p[4]! | (p[5]! << 8) | (p[6]! << 16) | (p[7]! << 24)) >>> 0;
  return hi * 2 ** 32 + lo;
}

/** Writes call number `n` (a safe integer) as uint64 LE into the first 8 bytes of `p`. */
function writeCallNumber(p: Uint8Array, n: number): void {
  const lo = n >>> 0;
  const hi = Math.floor(n / 2 ** 32);
  p[0] = lo;
  p[1] = lo >>> 8;
  p[2] = lo >>> 16;
  p[3] = lo >>> 24;
  p[4] = hi;
  p[5] = hi >>> 8;
  p[6] = hi >>> 16;
  p[7] = hi >>> 24;
}

interface RoundStats {
  size: number;
  messages: number;
  bytes: number;
  firstSentAt: number;
  lastSentAt: number;
  /** Clients whose last message of this round arrived. */
  lasts: number;
}

/** What the server saw from one client: call numbers are per client, so the order is checked per client. */
interface FromClient {
  lastCall: number;
  received: number;
  bytes: number;
  duplicates: number;
  gaps: number;
  done: boolean;
}

/** The server's figures (`status`, and the `PTI {...}` line printed with `PTI_REPORT`). */
export interface PtiStatus {
  done: boolean;
  bytes: number;
  messages: number;
  duplicates: number;
  gaps: number;
  rounds: Array<{ size: number; messages: number; bytes: number }>;
  clients: Record<string, FromClient>;
  paddingBytes: number;
}

export const Server = defineImmortal({
  name: "PtiServer",
  state: () => ({
    received: 0,
    bytes: 0,
    rounds: [] as RoundStats[],
    clients: {} as Record<string, FromClient>,
    padding: new Uint8Array(OPTIONS.statePaddingMb * MIB),
    done: false,
  }),
  handlers: {
    /**
     * One payload from client `from`. `last` marks the round's last message from that client, `final` its last
     * message of the run; `sentAt` is the client's ctx.now() at send.
     */
    receive(
      ctx,
      round: number,
      payload: Uint8Array,
      sentAt: number,
      last: boolean,
      final: boolean,
      from = "client",
    ) {
      const s = ctx.state;
      const n = callNumber(payload);
      let c = s.clients[from];
      if (c === undefined) {
        c = { lastCall: 0, received: 0, bytes: 0, duplicates: 0, gaps: 0, done: false };
        s.clients[from] = c;
      }
      if (n <= c.lastCall) c.duplicates += 1;
      else {
        if (n !== c.lastCall + 1) c.gaps += n - c.lastCall - 1;
        c.lastCall = n;
      }
      c.received += 1;
      c.bytes += payload.byteLength;
      s.received += 1;
      s.bytes += payload.byteLength;
      let r = s.rounds[round];
      if (r === undefined) {
        r = {
          size: payload.byteLength,
          messages: 0,
          bytes: 0,
          firstSentAt: sentAt,
          lastSentAt: sentAt,
          lasts: 0,
        };
        s.rounds[round] = r;
      }
      r.messages += 1;
      r.bytes += payload.byteLength;
      r.lastSentAt = sentAt;
      if (OPTIONS.echo) ctx.fork(Client, from).echo(payload);
      // Rates are measured by this live process with the wall clock, kept outside the state: they describe
      // this run and cannot change what a replay computes (ctx.now() is the time of the event that started
      // the chain and does not advance along forks, so it cannot time a round).
      if (!ctx.replaying && !liveRoundStart.has(round))
        liveRoundStart.set(round, { at: performance.now(), messages: r.messages - 1 });
      if (last) r.lasts += 1;
      if (last && r.lasts === CLIENTS.length) {
        const size = OPTIONS.randomSeed === undefined ? `${r.size}` : "random";
        const live = liveRoundStart.get(round);
        const secs = live === undefined ? 0 : (performance.now() - live.at) / 1000;
        const timed = live === undefined ? 0 : r.messages - live.messages;
        const rate =
          secs > 0 && timed > 1
            ? `${((timed * r.bytes) / r.messages / MIB / secs).toFixed(2)} MiB/s, ${Math.round(timed / secs)} msg/s`
            : "rate not measured (round replayed after a restart)";
        ctx.log.info(`Round ${round}: size ${size} B, ${r.messages} messages, ${rate}`);
      }
      if (final) c.done = true;
      if (final && !s.done && CLIENTS.every((name) => s.clients[name]?.done === true)) {
        s.done = true;
        const t = status(s);
        // lastCall: the sum of the clients' last call numbers (one client: its last call number).
        const lastCall = Object.values(s.clients).reduce((a, x) => a + x.lastCall, 0);
        ctx.log.info(`Bytes received: ${s.bytes}`);
        ctx.log.info(
          `DONE ${JSON.stringify({ bytes: s.bytes, messages: s.received, rounds: s.rounds.length, duplicates: t.duplicates, gaps: t.gaps, lastCall })}`,
        );
      }
    },
    /** The server's figures, for `main` (PTI_REPORT) and other outside observers. */
    status(ctx): PtiStatus {
      return status(ctx.state);
    },
  },
});

function status(s: {
  done: boolean;
  bytes: number;
  received: number;
  rounds: RoundStats[];
  clients: Record<string, FromClient>;
  padding: Uint8Array;
}): PtiStatus {
  const all = Object.values(s.clients);
  return {
    done: s.done,
    bytes: s.bytes,
    messages: s.received,
    duplicates: all.reduce((a, c) => a + c.duplicates, 0),
    gaps: all.reduce((a, c) => a + c.gaps, 0),
    rounds: s.rounds.map((r) => ({ size: r.size, messages: r.messages, bytes: r.bytes })),
    clients: structuredClone(s.clients),
    paddingBytes: s.padding.byteLength,
  };
}

/** Per round: when this live process saw its first message, and how many came before (replayed). */
const liveRoundStart = new Map<number, { at: number; messages: number }>();

export const Client = defineImmortal({
  name: "PtiClient",
  state: () => ({
    round: 0,
    sentInRound: 0, // messages (fixed sizes) or bytes (random sizes) sent in the current round
    callNo: 0,
    seed: OPTIONS.randomSeed ?? 0,
    finished: false,
    echoes: 0,
    echoLast: 0,
    echoOutOfOrder: 0,
    echoDone: false,
  }),
  init(ctx) {
    ctx.fork(Client, ctx.self).step();
  },
  handlers: {
    /** One continuation step: about PTI_STEP_BYTES of forks, then a fork to itself to continue. */
    step(ctx) {
      const s = ctx.state;
      const sentAt = ctx.now();
      let stepped = 0;
      while (stepped < OPTIONS.stepBytes && s.round < OPTIONS.rounds) {
        let size: number;
        let last: boolean;
        if (OPTIONS.randomSeed === undefined) {
          size = roundSize(s.round);
          s.sentInRound += 1;
          last = s.sentInRound >= roundMessages(s.round);
        } else {
          const [x, next] = prngNext(s.seed);
          s.seed = next;
          const remaining = OPTIONS.bytesPerRound - s.sentInRound;
          size = Math.min(MIN_SIZE + Math.floor(x * (OPTIONS.maxSize - MIN_SIZE + 1)), remaining);
          // Never leave a remainder too small for a message: the last one takes it all.
          if (remaining - size < MIN_SIZE) size = remaining;
          s.sentInRound += size;
          last = s.sentInRound >= OPTIONS.bytesPerRound;
        }
        s.callNo += 1;
        const payload = new Uint8Array(size);
        writeCallNumber(payload, s.callNo);
        const final = last && s.round === OPTIONS.rounds - 1;
        ctx.fork(Server, "server").receive(s.round, payload, sentAt, last, final, ctx.self);
        stepped += size;
        if (last) {
          s.round += 1;
          s.sentInRound = 0;
        }
      }
      if (s.round < OPTIONS.rounds) ctx.fork(Client, ctx.self).step();
      else {
        s.finished = true;
        checkEchoes(ctx.state, (m) => ctx.log.info(m));
      }
    },
    /** A payload the server sent back (PTI_ECHO). */
    echo(ctx, payload: Uint8Array) {
      const s = ctx.state;
      const n = callNumber(payload);
      if (n !== s.echoLast + 1) s.echoOutOfOrder += 1;
      s.echoLast = Math.max(s.echoLast, n);
      s.echoes += 1;
      checkEchoes(s, (m) => ctx.log.info(m));
    },
  },
});

function checkEchoes(
  s: {
    finished: boolean;
    echoes: number;
    callNo: number;
    echoLast: number;
    echoOutOfOrder: number;
    echoDone: boolean;
  },
  log: (m: string) => void,
): void {
  if (!OPTIONS.echo || s.echoDone || !s.finished || s.echoes < s.callNo) return;
  s.echoDone = true;
  log(
    `ECHO DONE ${JSON.stringify({ sent: s.callNo, echoes: s.echoes, lastEcho: s.echoLast, outOfOrder: s.echoOutOfOrder })}`,
  );
}

export default defineApp({
  instances: { server: Server, ...Object.fromEntries(CLIENTS.map((c) => [c, Client])) },
  /**
   * With PTI_REPORT, the process that hosts the server asks it for its figures until the run is done and prints
   * them as one `PTI {...}` line. A handler's own output is silent during replay, so after a restart the `DONE`
   * line may never be printed live; this line is printed by every run of the process once the state says done.
   */
  async main(app) {
    if (!OPTIONS.report || !app.hosted.includes("server")) return;
    const node = app.instance("server", Server);
    for (;;) {
      const s = await node.call(Server, "server").status();
      if (s.done) {
        process.stdout.write(`PTI ${JSON.stringify(s)}\n`);
        return;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  },
});
